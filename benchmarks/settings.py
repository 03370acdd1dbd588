"""
Settings of the benchmark project: the smallest Django project that runs ``consume_events``.

It is its own project (not the example's, not the tests'), so the benchmarks measure only the
app and the benchmark receivers. Everything that varies per run comes from the environment,
set by the orchestrator:

- ``KAFKA_BOOTSTRAP_SERVERS``: the local broker;
- ``BENCH_DB_PATH``: the SQLite file of the ORM receiver (an in-memory database otherwise);
- ``BENCH_DATABASE_URL``: ``postgresql://user:password@host:port/name``, the ORM receiver's
  PostgreSQL database instead (it wins over ``BENCH_DB_PATH``);
- ``BENCH_CONN_MAX_AGE``: ``CONN_MAX_AGE`` of that database, seconds or ``none`` (Django's 0 when unset);
- ``BENCH_CONCURRENCY``: ``KAFKA_CONSUMER['CONCURRENCY']`` (the app's default of 1 when unset);
- ``BENCH_RECEIVER`` and the other ``BENCH_*`` variables: see :mod:`benchmarks.benchapp.kafka_handlers`.

Everything else is left at the app's defaults (``POLL_TIMEOUT`` 1 s, no ``CONSUMER_CONFIG``),
as a service that just installed the app would have it.
"""

import os
from typing import Any

SECRET_KEY = "benchmarks-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "kafka_consumer_app",
    "benchmarks.benchapp",
]


def _conn_max_age(text: str) -> int | None:
    """``BENCH_CONN_MAX_AGE``: seconds, or ``none`` for persistent connections; Django's default is 0."""
    return None if text.lower() == "none" else int(text)


def _database() -> dict[str, Any]:
    """The ORM receiver's database: PostgreSQL at ``BENCH_DATABASE_URL``, else SQLite at ``BENCH_DB_PATH``."""
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        # Imported only here: the other benchmarks' processes (startup's included) never load it.
        from kafka_consumer_app.testing.postgres import django_database_from_url

        database = django_database_from_url(url)
    else:
        database = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("BENCH_DB_PATH") or ":memory:",
            "OPTIONS": {"timeout": 30},
        }
    database["CONN_MAX_AGE"] = _conn_max_age(os.environ.get("BENCH_CONN_MAX_AGE", "0"))
    return database


DATABASES = {"default": _database()}

KAFKA_CONSUMER = {
    "BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    "GROUP_ID": os.environ.get("KAFKA_GROUP_ID", "benchmarks"),
}
if os.environ.get("BENCH_CONCURRENCY"):
    KAFKA_CONSUMER["CONCURRENCY"] = int(os.environ["BENCH_CONCURRENCY"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"kafka_consumer_app": {"handlers": ["stderr"], "level": "INFO"}},
}

# -- the Open edX benchmark ---------------------------------------------------------------------
# ``BENCH_SCHEMA_REGISTRY_URL`` (the orchestrator's registry) turns it on, for every process of
# that benchmark alike: the producer, the hand-written loop and both consumers.
# ``BENCH_WITHOUT_APP=1`` leaves kafka_consumer_app out of INSTALLED_APPS (the hand-written loop,
# and edx-event-bus-kafka's consumer: with it out, ``consume_events`` is openedx-events' command).
SCHEMA_REGISTRY_URL = os.environ.get("BENCH_SCHEMA_REGISTRY_URL")
if SCHEMA_REGISTRY_URL:
    if os.environ.get("BENCH_WITHOUT_APP") == "1":
        INSTALLED_APPS.remove("kafka_consumer_app")
    INSTALLED_APPS.insert(-1, "openedx_events")
    KAFKA_CONSUMER["SCHEMA_REGISTRY"] = {"URL": SCHEMA_REGISTRY_URL}
    KAFKA_CONSUMER["TOPICS"] = {os.environ.get("BENCH_TOPIC", ""): {"OPENEDX_EVENTS": True}}
    EVENTS_SERVICE_NAME = "benchmarks"
    EVENT_BUS_KAFKA_BOOTSTRAP_SERVERS = KAFKA_CONSUMER["BOOTSTRAP_SERVERS"]
    EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL = SCHEMA_REGISTRY_URL
    EVENT_BUS_CONSUMER = "edx_event_bus_kafka.KafkaEventConsumer"
    EVENT_BUS_KAFKA_CONSUMERS_ENABLED = True
    # edx-event-bus-kafka logs two INFO lines per message by default; kafka_consumer_app logs none
    # per handled message, so both are measured without per-message logging.
    EVENT_BUS_KAFKA_AUDIT_LOGGING_ENABLED = False
