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
    # The Django admin, where kafka_consumer_app's operator console lives (/admin/).
    "django.contrib.admin",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "kafka_consumer_app",
    "orders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

STATIC_URL = "static/"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB_PATH", str(BASE_DIR / "example.sqlite3")),
        # Several consumer processes may write at once; wait for the lock instead of failing.
        "OPTIONS": {"timeout": 30},
        # A consumer is one long-lived process: keep its connection. The loop still closes it around
        # any message after which it is broken; with 0, every message would open a new one.
        "CONN_MAX_AGE": None,
    }
}

# What the Kafka settings read from the environment. The demo and the tests export the local broker's
# address; in Kubernetes the service's ConfigMap sets these (MANIFESTS["ENV"] below renders them into it).
KAFKA_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    "KAFKA_GROUP_ID": os.environ.get("KAFKA_GROUP_ID", "example-service"),
    "KAFKA_SECURITY_PROTOCOL": os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
    "KAFKA_SASL_MECHANISM": os.environ.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
    "KAFKA_PROGRESS_INTERVAL": os.environ.get("KAFKA_PROGRESS_INTERVAL", "60"),
}
# librdkafka options, verbatim. Plaintext on the local broker; in the cluster SASL over TLS, with the
# credentials from the Secret (environment variables, never in the ConfigMap or the manifests).
KAFKA_SECURITY = {}
if KAFKA_ENV["KAFKA_SECURITY_PROTOCOL"] != "PLAINTEXT":
    KAFKA_SECURITY["security.protocol"] = KAFKA_ENV["KAFKA_SECURITY_PROTOCOL"]
if KAFKA_ENV["KAFKA_SECURITY_PROTOCOL"].startswith("SASL_"):
    KAFKA_SECURITY |= {
        "sasl.mechanism": KAFKA_ENV["KAFKA_SASL_MECHANISM"],
        "sasl.username": os.environ["KAFKA_USERNAME"],
        "sasl.password": os.environ["KAFKA_PASSWORD"],
    }

KAFKA_CONSUMER = {
    "BOOTSTRAP_SERVERS": KAFKA_ENV["KAFKA_BOOTSTRAP_SERVERS"],
    # The consumer group of every topic that does not name its own.
    "GROUP_ID": KAFKA_ENV["KAFKA_GROUP_ID"],
    "CONSUMER_CONFIG": KAFKA_SECURITY,
    "PROGRESS_INTERVAL": float(KAFKA_ENV["KAFKA_PROGRESS_INTERVAL"]),
    "TOPICS": {
        # Scaled by KEDA on consumer lag, from 1 replica up to one per partition. Its offsets are also
        # written to this database, in the receivers' transaction: their writes happen exactly once.
        "orders": {
            "DESERIALIZER": "json",
            "OFFSET_STORE": "database",
            "PARTITIONS": 6,
            "KEDA": True,
            "LAG_THRESHOLD": 50,
        },
        # A fixed number of replicas.
        "audit-log": {
            "GROUP_ID": "example-service-audit",
            "DESERIALIZER": "str",
            "PARTITIONS": 3,
            "REPLICAS": 2,
            "MEMORY_REQUEST": "192Mi",
        },
    },
    # The Kubernetes manifests in k8s/, rendered by `make manifests` (./manage.py consumer_manifests).
    "MANIFESTS": {
        "APP_NAME": "example-service",
        "NAMESPACE": "example-service",
        "ENV": KAFKA_ENV,
        # Holds KAFKA_USERNAME, KAFKA_PASSWORD and DJANGO_SECRET_KEY; KEDA reads the first two as well.
        "SECRET": "example-service-secrets",
        "KEDA_AUTH": {"username": "KAFKA_USERNAME", "password": "KAFKA_PASSWORD"},
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
