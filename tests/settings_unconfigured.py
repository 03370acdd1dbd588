"""The test settings without KAFKA_CONSUMER, for the command's "not configured" error (E001)."""

from tests.settings import *  # noqa: F403

del KAFKA_CONSUMER  # noqa: F821
