"""A test app whose receivers are steered by the environment and by the messages themselves."""

from django.apps import AppConfig


class TestAppConfig(AppConfig):
    """Receivers live in tests/testapp/kafka_handlers.py and are autodiscovered, as in a real service."""

    name = "tests.testapp"
    label = "testapp"
