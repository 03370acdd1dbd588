"""
Settings of the example service: the smallest Django project that consumes Kafka.

It stands in for a real service in the demo, the docs and the tests. Values that
differ per environment come from environment variables, as they would in Kubernetes.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "example_project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "kafka_consumer_app",
    "orders",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB_PATH", str(BASE_DIR / "example.sqlite3")),
        # Several consumer processes may write at once; wait for the lock instead of failing.
        "OPTIONS": {"timeout": 30},
    }
}

KAFKA_CONSUMER = {
    # Where the brokers are; the demo and the tests export the local broker's address.
    "BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    # The consumer group of every topic that does not name its own.
    "GROUP_ID": os.environ.get("KAFKA_GROUP_ID", "example-service"),
    # librdkafka options, verbatim; credentials would come from the environment (a Secret).
    "CONSUMER_CONFIG": {},
    "PROGRESS_INTERVAL": float(os.environ.get("KAFKA_PROGRESS_INTERVAL", "60")),
    "TOPICS": {
        "orders": {"DESERIALIZER": "json"},
        "audit-log": {"GROUP_ID": "example-service-audit", "DESERIALIZER": "str"},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "kafka_consumer_app": {"handlers": ["stderr"], "level": "INFO"},
        "orders": {"handlers": ["stderr"], "level": "INFO"},
    },
}
