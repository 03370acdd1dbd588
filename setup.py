"""Packaging for kafka_consumer_app; runtime requirements come from requirements/base.in."""

import os
import re

from setuptools import find_packages, setup

HERE = os.path.abspath(os.path.dirname(__file__))


def load_requirements(*relative_paths):
    """
    Return the requirement specifiers listed in the given .in files.

    Lines that are comments, blank, or pip options (-c, -r) are dropped, and so are
    trailing comments; constraints are applied by pip-tools when pins are compiled.
    """
    requirements = []
    for relative_path in relative_paths:
        with open(os.path.join(HERE, relative_path), encoding="utf-8") as handle:
            for line in handle:
                line = re.sub(r"\s+#.*$", "", line).strip()
                if line and not line.startswith(("#", "-")):
                    requirements.append(line)
    return requirements


def get_version():
    """Read __version__ from the package without importing it."""
    with open(os.path.join(HERE, "kafka_consumer_app", "__init__.py"), encoding="utf-8") as handle:
        match = re.search(r'^__version__ = "([^"]+)"', handle.read(), re.M)
    if not match:
        raise RuntimeError("kafka_consumer_app/__init__.py has no __version__")
    return match.group(1)


with open(os.path.join(HERE, "README.rst"), encoding="utf-8") as readme:
    LONG_DESCRIPTION = readme.read()

setup(
    name="kafka_consumer_app",
    version=get_version(),
    description="Consume Kafka topics in Django services: one command per topic, handlers as Django signals.",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/x-rst",
    license="Apache-2.0",
    packages=find_packages(include=["kafka_consumer_app", "kafka_consumer_app.*"]),
    include_package_data=True,
    package_data={"kafka_consumer_app": ["py.typed"]},
    python_requires=">=3.11",
    install_requires=load_requirements("requirements/base.in"),
    extras_require={
        "avro": load_requirements("requirements/avro.in"),
        "openedx": load_requirements("requirements/avro.in", "requirements/openedx.in"),
        "postgres": load_requirements("requirements/postgres.in"),
        "otel": load_requirements("requirements/otel.in"),
    },
    zip_safe=False,
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Framework :: Django",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Framework :: Django :: 6.1",
        "Intended Audience :: Developers",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
    ],
)
