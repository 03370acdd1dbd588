"""
The exceptions kafka_consumer_app raises.

Every fatal condition maps to one class here. Each carries an ``exit_code`` so that
``consume_events`` can exit with a code operators can tell apart, and a message that
names the cause and the fix on one line.
"""

from __future__ import annotations

#: Exit codes of ``consume_events``. 0 is a clean stop; 2 is argparse's usage error.
EXIT_CONFIGURATION = 1
EXIT_HANDLER_FAILED = 3
EXIT_KAFKA = 4
EXIT_STALLED = 5
EXIT_DATABASE_UNAVAILABLE = 6


class KafkaConsumerAppError(Exception):
    """Base class: a condition that stops the consumer. ``str()`` is one line for operators."""

    exit_code = EXIT_CONFIGURATION


class ConfigurationError(KafkaConsumerAppError):
    """Settings or command-line options are missing or invalid; nothing was consumed."""


class TopicNotFoundError(KafkaConsumerAppError):
    """The topic to consume does not exist on the cluster."""


class BrokerUnavailableError(KafkaConsumerAppError):
    """No broker answered within the bounded connection wait."""


class AuthenticationError(KafkaConsumerAppError):
    """The cluster rejected the configured credentials."""


class FatalKafkaError(KafkaConsumerAppError):
    """librdkafka reported an error the client cannot recover from."""

    exit_code = EXIT_KAFKA


class MessageFailedError(KafkaConsumerAppError):
    """A message could not be handled; its offset was not committed, so it will be redelivered."""

    exit_code = EXIT_HANDLER_FAILED


class DeadLetterError(MessageFailedError):
    """A message could not be written to its dead-letter topic, so its offset was not committed."""


class CircuitOpenError(MessageFailedError):
    """Too many consecutive messages failed; the consumer stops so that it is restarted later."""


class DatabaseUnavailableError(KafkaConsumerAppError):
    """
    The database stayed unavailable past ``DATABASE_OUTAGE_TIMEOUT``; the message in hand was not committed.

    No fault of the message: it was neither dead-lettered nor counted by the circuit breaker, and the
    restarted consumer handles it once the database answers.
    """

    exit_code = EXIT_DATABASE_UNAVAILABLE


class DeserializationError(Exception):
    """A message's key or value could not be decoded by the topic's deserializer."""


class BatchFailed(Exception):
    """
    Raised by a ``batch_signal`` receiver: ``messages[index]`` failed with ``cause``.

    The messages before ``index`` count as handled (their offsets are committed); ``messages[index]``
    goes through the retry and dead-letter path alone; the messages after it come again in a new
    batch once it is handled or given up. Any other exception fails the whole batch.
    """

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(index, cause)
        self.index = index
        self.cause = cause

    def __str__(self) -> str:
        return f"message {self.index} of the batch failed: {type(self.cause).__name__}: {self.cause}"


class SchemaRegistryUnavailableError(KafkaConsumerAppError):
    """
    The schema registry could not be reached, or refused the credentials, while decoding a message.

    No fault of the message, so it is neither dead-lettered nor committed: the consumer stops
    (exit 1) and the message is decoded again after the restart.
    """
