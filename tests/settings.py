"""
Settings of the test suite: the example project, with a test app in place of its own.

The test app connects receivers for the topic named in the environment, so that
``consume_events`` subprocesses started by the tests have something to call.

The database is SQLite, unless ``TEST_DATABASE_URL`` (``postgresql://user:password@host:port/name``)
names a PostgreSQL database: the ``postgres_database`` fixture passes it to the subprocesses it serves.
"""

import json
import os

from example_project.settings import *  # noqa: F403
from kafka_consumer_app.testing.postgres import django_database_from_url

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "kafka_consumer_app",
    "tests.testapp",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TEST_DB_PATH", ":memory:"),
        "OPTIONS": {"timeout": 30},
    }
}
if os.environ.get("TEST_DATABASE_URL"):
    # A consumer keeps its connection, as the example service's does (CONN_MAX_AGE None), so that a
    # server dropping it is met by the loop's own handling of broken connections.
    DATABASES["default"] = {**django_database_from_url(os.environ["TEST_DATABASE_URL"]), "CONN_MAX_AGE": None}

#: The consumers' group protocol: KIP-848's when $KAFKA_GROUP_PROTOCOL is "consumer" (the group_protocol fixture).
GROUP_PROTOCOL_OPTIONS = (
    {"group.protocol": os.environ["KAFKA_GROUP_PROTOCOL"]} if os.environ.get("KAFKA_GROUP_PROTOCOL") else {}
)

KAFKA_CONSUMER = {
    "BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    "GROUP_ID": os.environ.get("KAFKA_GROUP_ID", "tests"),
    "CONNECT_TIMEOUT": float(os.environ.get("KAFKA_CONNECT_TIMEOUT", "20")),
    "PROGRESS_INTERVAL": float(os.environ.get("KAFKA_PROGRESS_INTERVAL", "60")),
    "POLL_TIMEOUT": 0.5,
    # The suite's default is the strictest policy: one attempt, then stop without committing.
    # Tests of retries and dead-lettering choose theirs, in settings or through these variables.
    "FAILURE_POLICY": os.environ.get("KAFKA_FAILURE_POLICY", "stop"),
    "RETRY": {
        "ATTEMPTS": int(os.environ.get("KAFKA_RETRY_ATTEMPTS", "1")),
        "INITIAL_BACKOFF": float(os.environ.get("KAFKA_RETRY_BACKOFF", "0.5")),
        "MAX_BACKOFF": float(os.environ.get("KAFKA_RETRY_MAX_BACKOFF", "5")),
    },
    "CIRCUIT_BREAKER": int(os.environ.get("KAFKA_CIRCUIT_BREAKER", "5")),
    "HANDLER_SOFT_TIMEOUT": float(os.environ.get("KAFKA_HANDLER_SOFT_TIMEOUT", "30")),
    "HANDLER_HARD_TIMEOUT": float(os.environ.get("KAFKA_HANDLER_HARD_TIMEOUT", "120")),
    "HEARTBEAT_FILE": os.environ.get("KAFKA_HEARTBEAT_FILE", False),
    "PRODUCER_CONFIG": {"message.timeout.ms": int(os.environ.get("KAFKA_DLT_TIMEOUT_MS", "10000"))},
    # The health server (tests/test_health_http.py, tests/test_metrics.py): off unless a port is given.
    "HEALTH_PORT": int(os.environ["KAFKA_HEALTH_PORT"]) if os.environ.get("KAFKA_HEALTH_PORT") else None,
    "HEARTBEAT_MAX_AGE": float(os.environ.get("KAFKA_HEARTBEAT_MAX_AGE", "60")),
    # librdkafka options as a JSON object, e.g. '{"statistics.interval.ms": 500}'.
    "CONSUMER_CONFIG": {**GROUP_PROTOCOL_OPTIONS, **json.loads(os.environ.get("KAFKA_CONSUMER_CONFIG", "{}"))},
}
