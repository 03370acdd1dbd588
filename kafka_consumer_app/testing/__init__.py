"""Helpers for testing services that use kafka_consumer_app (see also :mod:`.broker`)."""
