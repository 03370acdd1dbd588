"""
Dead letters: a failed message parked in its dead-letter topic, with headers that say why.

:class:`DeadLetterProducer` writes a message to the topic's dead-letter topic with its own
headers plus ``dlt.*`` headers (where it came from, which receivers failed, how, after how
many attempts) and confirms the write before the offset may be stored. ``replay_dead_letters``
reads the same headers. See docs/decisions/0002-retries-and-dead-letters.rst.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka import Message as KafkaMessage

from kafka_consumer_app.engine.client import producer_options
from kafka_consumer_app.engine.policy import FailureReport
from kafka_consumer_app.engine.records import locate, where
from kafka_consumer_app.exceptions import ConfigurationError, DeadLetterError
from kafka_consumer_app.message import headers_of
from kafka_consumer_app.redaction import redact_text, secret_values
from kafka_consumer_app.settings.topics import TopicConfig

#: Prefix of the headers a dead-lettered message carries on top of its own.
HEADER_PREFIX = "dlt."
HEADER_TOPIC = "dlt.original.topic"
HEADER_PARTITION = "dlt.original.partition"
HEADER_OFFSET = "dlt.original.offset"
HEADER_TIMESTAMP = "dlt.original.timestamp"
HEADER_GROUP = "dlt.group"
HEADER_RECEIVERS = "dlt.receivers"
HEADER_EXCEPTION_CLASS = "dlt.exception.class"
HEADER_EXCEPTION_MESSAGE = "dlt.exception.message"
HEADER_ATTEMPTS = "dlt.attempts"
HEADER_REASON = "dlt.reason"

MAX_EXCEPTION_MESSAGE = 1000


def _qualified_name(error: BaseException) -> str:
    kind = type(error)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def dead_letter_headers(
    raw: KafkaMessage, group_id: str, report: FailureReport
) -> list[tuple[str, str | bytes | None]]:
    """The message's own headers, followed by the ``dlt.*`` headers that describe its failure."""
    first = report.errors[0] if report.errors else None
    timestamp_type, timestamp = raw.timestamp()
    topic, partition, offset = locate(raw)
    added = {
        HEADER_TOPIC: topic,
        HEADER_PARTITION: str(partition),
        HEADER_OFFSET: str(offset),
        HEADER_TIMESTAMP: str(timestamp) if timestamp_type else "",
        HEADER_GROUP: group_id,
        HEADER_RECEIVERS: ",".join(report.receivers),
        HEADER_EXCEPTION_CLASS: ",".join(_qualified_name(error) for error in report.errors),
        HEADER_EXCEPTION_MESSAGE: str(first)[:MAX_EXCEPTION_MESSAGE] if first is not None else "",
        HEADER_ATTEMPTS: str(report.attempts),
        HEADER_REASON: report.reason,
    }
    own: list[tuple[str, str | bytes | None]] = [
        (name, value) for name, value in headers_of(raw) if not name.startswith(HEADER_PREFIX)
    ]
    return own + [(name, value.encode("utf-8")) for name, value in added.items()]


class DeadLetterProducer:
    """Writes failed messages to the topic's dead-letter topic and confirms each write."""

    def __init__(self, config: TopicConfig) -> None:
        if not config.failure.dead_letter_topic:
            raise ValueError("the topic has no dead-letter topic")
        self.topic = config.failure.dead_letter_topic
        self.group_id = config.group_id
        settings = producer_options(config)
        self.timeout = float(settings["message.timeout.ms"]) / 1000 + 5
        try:
            self._producer = Producer(settings)
        except KafkaException as error:
            reason = redact_text(error.args[0].str() if error.args else str(error), secret_values())
            raise ConfigurationError(
                f"librdkafka refused the dead-letter producer's configuration ({reason}); fix "
                "KAFKA_CONSUMER['PRODUCER_CONFIG'] or the connection options of CONSUMER_CONFIG"
            ) from error

    def park(self, raw: KafkaMessage, report: FailureReport) -> None:
        """Write ``raw`` to the dead-letter topic; return only once the broker confirmed it."""
        outcome: list[KafkaError | None] = []
        self._producer.produce(
            self.topic,
            value=raw.value(),
            key=raw.key(),
            headers=dead_letter_headers(raw, self.group_id, report),
            on_delivery=lambda error, _message: outcome.append(error),
        )
        remaining = self._producer.flush(self.timeout)
        error = outcome[0] if outcome else None
        if remaining or not outcome or error is not None:
            why = error.str() if error is not None else f"no delivery report within {self.timeout:g}s"
            raise DeadLetterError(
                f"could not park {where(raw)} in dead-letter topic "
                f"{self.topic!r} ({why}); the offset was not committed, so the message will be redelivered; "
                "create the topic or check the producer's permissions"
            )

    def close(self) -> None:
        """Deliver anything still queued (there should be nothing: every write is confirmed)."""
        self._producer.flush(5)
