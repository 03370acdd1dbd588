"""
What happens to a message whose receivers fail: retries, dead-lettering, the circuit breaker.

- :class:`RetryPolicy` decides whether a failure is tried again and after what backoff.
- :class:`RetryScheduler` blocks the failed message's partition while its retry is pending:
  it pauses the partition and seeks back to the failed offset, so the consumer keeps
  polling (and stays in its group) and other partitions keep flowing.
- :class:`DeadLetterProducer` parks a message in its dead-letter topic, with headers that
  say where it came from and why it failed, and confirms the write before the offset may
  be stored.
- :class:`CircuitBreaker` counts consecutive failed messages, so that a consumer whose
  every message fails (a database down) exits and lets Kubernetes restart it.

See docs/decisions/0002-retries-and-dead-letters.rst.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import Message as KafkaMessage
from django.utils.module_loading import import_string

from kafka_consumer_app.engine.dispatch import ReceiverFailure
from kafka_consumer_app.exceptions import ConfigurationError, DeadLetterError
from kafka_consumer_app.redaction import redact_text, secret_values
from kafka_consumer_app.settings.failures import RetryConfig
from kafka_consumer_app.settings.topics import TopicConfig

logger = logging.getLogger(__name__)

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

REASON_RECEIVER_FAILED = "receiver-failed"
REASON_MALFORMED = "malformed"

#: Consumer options that also apply to the dead-letter producer (same cluster, same credentials).
CONNECTION_OPTION_PREFIXES = (
    "security.",
    "sasl.",
    "ssl.",
    "ssl_",
    "socket.",
    "broker.",
    "reconnect.",
    "client.",
    "api.version",
    "enable.ssl.",
    "enable.sasl.",
    "https.",
)

MAX_EXCEPTION_MESSAGE = 1000


class RetryPolicy:
    """Attempts, exponential backoff with jitter, and exceptions never retried."""

    def __init__(self, config: RetryConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.not_retried: tuple[type[BaseException], ...] = tuple(import_string(path) for path in config.not_retried)
        self._rng = rng or random.Random()

    def retryable(self, attempts_made: int, errors: Iterable[BaseException]) -> bool:
        """True when another try is allowed after ``attempts_made`` tries failed with ``errors``."""
        if attempts_made >= self.config.attempts:
            return False
        return not any(isinstance(error, self.not_retried) for error in errors)

    def backoff(self, attempts_made: int) -> float:
        """Seconds to wait before the next try, after ``attempts_made`` failed tries (>= 1)."""
        config = self.config
        base = min(config.max_backoff, config.initial_backoff * config.multiplier ** max(attempts_made - 1, 0))
        spread = base * config.jitter
        return max(0.0, base + self._rng.uniform(-spread, spread))


@dataclass
class PendingRetry:
    """A message waiting for its next try; its partition is paused until ``due``."""

    partition: int
    offset: int
    attempts_made: int
    failures: list[ReceiverFailure]
    due: float
    resumed: bool = False


class RetryScheduler:
    """Keeps one pending retry per partition, pausing and resuming partitions around it."""

    def __init__(self, kafka_topic: str) -> None:
        self.kafka_topic = kafka_topic
        self._pending: dict[int, PendingRetry] = {}

    def pending(self, partition: int) -> PendingRetry | None:
        """The retry waiting on ``partition``, if any."""
        return self._pending.get(partition)

    def schedule(
        self, client: Any, raw: KafkaMessage, attempts_made: int, failures: list[ReceiverFailure], delay: float
    ) -> PendingRetry:
        """Pause the message's partition and rewind it to the message, to be tried again in ``delay`` s."""
        partition = TopicPartition(raw.topic(), raw.partition(), raw.offset())
        client.pause([partition])
        client.seek(partition)
        retry = PendingRetry(raw.partition(), raw.offset(), attempts_made, failures, time.monotonic() + delay)
        self._pending[raw.partition()] = retry
        return retry

    def resume_due(self, client: Any) -> None:
        """Resume every paused partition whose retry is due."""
        now = time.monotonic()
        for retry in self._pending.values():
            if not retry.resumed and retry.due <= now:
                client.resume([TopicPartition(self.kafka_topic, retry.partition)])
                retry.resumed = True

    def poll_timeout(self, default: float) -> float:
        """How long the next poll may block without making a due retry late."""
        waits = [retry.due - time.monotonic() for retry in self._pending.values() if not retry.resumed]
        return max(0.0, min([default, *waits]))

    def finish(self, partition: int) -> None:
        """Forget the retry of ``partition``: its message succeeded or was given up."""
        self._pending.pop(partition, None)

    def forget(self, partitions: Iterable[TopicPartition], client: Any = None) -> None:
        """
        Drop the retries of partitions this consumer no longer owns; their new owner starts afresh.

        With ``client``, a partition still paused for its retry is resumed first: librdkafka keeps
        a partition paused across a revoke, so one assigned back to this consumer later would
        otherwise never be fetched again.
        """
        paused = []
        for partition in partitions:
            retry = self._pending.pop(partition.partition, None)
            if retry is not None and not retry.resumed:
                paused.append(TopicPartition(self.kafka_topic, partition.partition))
        if paused and client is not None:
            try:
                client.resume(paused)
            except KafkaException as error:
                logger.warning(
                    "Could not resume partitions %s of %s when they were revoked (%s); if they are assigned back, "
                    "restart the consumer.",
                    [p.partition for p in paused],
                    self.kafka_topic,
                    error,
                )


class CircuitBreaker:
    """Trips after ``threshold`` consecutive failed messages; None never trips."""

    def __init__(self, threshold: int | None) -> None:
        self.threshold = threshold
        self.consecutive = 0

    def record_success(self) -> None:
        """A message was handled: the streak of failures ends."""
        self.consecutive = 0

    def record_failure(self) -> bool:
        """A message failed its last attempt; return True when that trips the breaker."""
        self.consecutive += 1
        return self.threshold is not None and self.consecutive >= self.threshold


@dataclass(frozen=True)
class FailureReport:
    """Why a message is parked: the failing receivers (or the decoding error) and the tries made."""

    reason: str
    errors: Sequence[BaseException]
    receivers: Sequence[str] = field(default_factory=tuple)
    attempts: int = 1

    @classmethod
    def from_failures(cls, failures: Sequence[ReceiverFailure], attempts: int) -> FailureReport:
        """The report of a message whose receivers failed on their last attempt."""
        return cls(
            REASON_RECEIVER_FAILED,
            [failure.error for failure in failures],
            [failure.receiver_name for failure in failures],
            attempts,
        )


def _qualified_name(error: BaseException) -> str:
    kind = type(error)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def dead_letter_headers(raw: KafkaMessage, group_id: str, report: FailureReport) -> list[tuple[str, bytes]]:
    """The message's own headers, followed by the ``dlt.*`` headers that describe its failure."""
    first = report.errors[0] if report.errors else None
    timestamp_type, timestamp = raw.timestamp()
    added = {
        HEADER_TOPIC: raw.topic(),
        HEADER_PARTITION: str(raw.partition()),
        HEADER_OFFSET: str(raw.offset()),
        HEADER_TIMESTAMP: str(timestamp) if timestamp_type else "",
        HEADER_GROUP: group_id,
        HEADER_RECEIVERS: ",".join(report.receivers),
        HEADER_EXCEPTION_CLASS: ",".join(_qualified_name(error) for error in report.errors),
        HEADER_EXCEPTION_MESSAGE: str(first)[:MAX_EXCEPTION_MESSAGE] if first is not None else "",
        HEADER_ATTEMPTS: str(report.attempts),
        HEADER_REASON: report.reason,
    }
    own = [(name, value) for name, value in (raw.headers() or []) if not name.startswith(HEADER_PREFIX)]
    return own + [(name, value.encode("utf-8")) for name, value in added.items()]


def producer_config(config: TopicConfig, **extra: Any) -> dict[str, Any]:
    """librdkafka options for a producer on the consumer's cluster, with its credentials."""
    options = {
        key: value
        for key, value in config.consumer_config.items()
        if key.startswith(CONNECTION_OPTION_PREFIXES) or key == "debug"
    }
    options.update({"enable.idempotence": True, "acks": "all", "linger.ms": 0, "message.timeout.ms": 30000})
    options.update(config.failure.producer_config)
    options.update(extra)
    options["bootstrap.servers"] = config.bootstrap_servers
    return options


class DeadLetterProducer:
    """Writes failed messages to the topic's dead-letter topic and confirms each write."""

    def __init__(self, config: TopicConfig) -> None:
        if not config.failure.dead_letter_topic:
            raise ValueError("the topic has no dead-letter topic")
        self.topic = config.failure.dead_letter_topic
        self.group_id = config.group_id
        settings = producer_config(config, logger=logging.getLogger("kafka_consumer_app.librdkafka"))
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
                f"could not park {raw.topic()}[{raw.partition()}]@{raw.offset()} in dead-letter topic "
                f"{self.topic!r} ({why}); the offset was not committed, so the message will be redelivered; "
                "create the topic or check the producer's permissions"
            )

    def close(self) -> None:
        """Deliver anything still queued (there should be nothing: every write is confirmed)."""
        self._producer.flush(5)
