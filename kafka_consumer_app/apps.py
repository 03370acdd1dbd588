"""Django app configuration: autodiscovers receivers and registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules

#: The module name looked up in every installed app for Kafka receivers.
HANDLERS_MODULE = "kafka_handlers"


class KafkaConsumerAppConfig(AppConfig):
    """Imports ``<app>/kafka_handlers.py`` of every installed app once apps are ready."""

    name = "kafka_consumer_app"
    verbose_name = "Kafka consumer"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the checks, mask secrets in (and thin out repeats of) librdkafka's lines, import handlers."""
        from kafka_consumer_app.observers.logs import quiet_repeats
        from kafka_consumer_app.redaction import protect_loggers
        from kafka_consumer_app.settings import checks  # noqa: F401  (registers the checks)

        protect_loggers()
        quiet_repeats()

        autodiscover_modules(HANDLERS_MODULE)
