"""Consume Kafka topics in a Django service, one ``consume_events`` process per topic."""

__version__ = "0.1.0"
