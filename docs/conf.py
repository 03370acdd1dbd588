"""Sphinx configuration of kafka_consumer_app's documentation site (``make docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

import django
from django.conf import settings

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS.parent), str(DOCS / "_ext")]

# autodoc imports the app's modules and the command pages build the commands' parsers: both need Django.
if not settings.configured:
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.admin",
            "kafka_consumer_app",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    )
    django.setup()

project = "kafka_consumer_app"
author = "kafka_consumer_app contributors"
copyright = "kafka_consumer_app contributors"

extensions = ["sphinx.ext.autodoc", "settings_tables"]
html_theme = "sphinx_book_theme"
html_title = "kafka_consumer_app"
html_theme_options = {"show_toc_level": 2}
exclude_patterns = ["_build"]
# Every page is plain reStructuredText, readable on GitHub as well.
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

# Nitpicky: every cross-reference must resolve, except to the libraries this site does not document.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(django|confluent_kafka|datetime|collections|typing|types|pathlib|subprocess|threading)\..*"),
    (r"py:.*", r"(Any|Signal|Path|datetime|Headers|Callable|Iterator|Sequence|Mapping|TracebackType|Self)"),
    (r"py:.*", r"(sql|psycopg)\..*"),
    (r"py:.*", r"kafka_consumer_app\.testing\.jars(\..*)?"),
]
# Names the docstrings mention that the site does not document: the engine's class, and short names that
# resolve in the module's own namespace (LocalKafkaBroker is re-exported by testing.broker).
nitpick_ignore = [
    ("py:class", "kafka_consumer_app.engine.consumer.EventConsumer"),
    ("py:mod", "broker"),
    ("py:class", "LocalKafkaBroker"),
    ("py:func", "kafka_version"),
]

# The descriptions quote options and values literally: "--group-id" must not become an en dash.
smartquotes = False
