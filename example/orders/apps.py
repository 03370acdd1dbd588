"""The example service's only app: it records the orders it hears about."""

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    """Receivers live in orders/kafka_handlers.py and are autodiscovered."""

    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"
