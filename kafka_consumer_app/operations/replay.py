"""
Replaying parked messages: from a dead-letter topic back to the topic they failed on.

:class:`DeadLetterReplayer` reads a dead-letter topic from its group's committed position
up to the end offsets it saw at start, republishes each message with its original key,
value and headers (the ``dlt.*`` headers removed) to ``dlt.original.topic`` or to an
explicit target, and commits each dead-letter offset only after the broker confirmed the
republished copy. A crash therefore republishes at most the message in hand twice; it
never drops one. :func:`republish` is the one way a parked message goes back: the operator
console's Replay uses it too (docs/decisions/0012-replaying-from-the-admin.rst).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka import Message as KafkaMessage

from kafka_consumer_app.client_errors import ClientErrors, metadata_within
from kafka_consumer_app.engine.client import consumer_options, producer_options
from kafka_consumer_app.engine.dead_letters import (
    HEADER_EXCEPTION_CLASS,
    HEADER_PREFIX,
    HEADER_REASON,
    HEADER_TOPIC,
)
from kafka_consumer_app.engine.records import locate, where
from kafka_consumer_app.exceptions import (
    ConfigurationError,
    DeadLetterError,
    FatalKafkaError,
    TopicNotFoundError,
)
from kafka_consumer_app.message import headers_of
from kafka_consumer_app.settings.topics import TopicConfig

logger = logging.getLogger(__name__)

#: Committed offsets below zero mean "nothing committed yet".
_NOTHING_COMMITTED = 0


@dataclass
class ReplaySummary:
    """What a replay did: messages republished (or, in a dry run, that would be)."""

    replayed: int = 0
    dry_run: bool = False


@dataclass(frozen=True)
class ReplayOptions:
    """What to replay, where to, and whether to write anything."""

    to_topic: str | None = None
    max_messages: int | None = None
    dry_run: bool = False
    timeout: float = 30.0


class DeadLetterReplayer:
    """Republishes the messages of one dead-letter topic; one process, partitions assigned by hand."""

    def __init__(self, config: TopicConfig, options: ReplayOptions, echo: Callable[[str], None] = print) -> None:
        self.config = config
        self.options = options
        self.echo = echo
        self.summary = ReplaySummary(dry_run=options.dry_run)
        self.errors = ClientErrors()  # the error_cb of both clients: credentials and TLS fail fast

    def run(self) -> ReplaySummary:
        """Replay up to the end offsets seen at start (or ``max_messages``); return the summary."""
        consumer = Consumer(self._consumer_config())
        producer = None if self.options.dry_run else Producer(producer_options(self.config, self.errors.record))
        try:
            self._replay_until_ends(consumer, producer, self._assign(consumer))
        finally:
            consumer.close()
        return self.summary

    def _replay_until_ends(self, consumer: Consumer, producer: Producer | None, ends: dict[int, int]) -> None:
        """Replay message after message until every partition reached the end seen at start, or the limit."""
        last_message_at = time.monotonic()
        while ends and not self._limit_reached():
            raw = consumer.poll(1.0)
            if raw is None:
                self._drop_finished(consumer, ends)
                if ends and time.monotonic() - last_message_at > self.options.timeout:
                    raise DeadLetterError(
                        f"no message arrived from {self.config.kafka_topic} for {self.options.timeout:g}s although "
                        f"partitions {sorted(ends)} are not at their end; run the replay again"
                    )
                continue
            last_message_at = time.monotonic()
            error = raw.error()
            if error is not None:
                self._on_error(error)
                continue
            done = locate(raw)
            self._replay_one(consumer, producer, raw)
            if done.offset + 1 >= ends.get(done.partition, 0):
                ends.pop(done.partition, None)

    def _consumer_config(self) -> dict[str, Any]:
        # Offsets are committed by hand, one by one, once each copy is confirmed.
        managed = {"enable.auto.commit": False, "enable.auto.offset.store": False, "auto.offset.reset": "earliest"}
        return consumer_options(self.config, self.errors.record, managed)

    def _assign(self, consumer: Consumer) -> dict[int, int]:
        """Assign every partition from the group's committed offset; return the end offsets still to reach."""
        topic = self.config.kafka_topic
        metadata = metadata_within(
            consumer, topic, self.config.bootstrap_servers, self.config.connect_timeout, self.errors
        )
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise TopicNotFoundError(f"dead-letter topic {topic!r} does not exist; check --topic")
        partitions = [TopicPartition(topic, p) for p in sorted(found.partitions)]
        committed = consumer.committed(partitions, timeout=self.options.timeout)
        starts, ends = [], {}
        for tp in committed:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, tp.partition), timeout=self.options.timeout
            )
            # Nothing committed yet, or retention deleted what was: start at the oldest message left.
            start = max(tp.offset, low) if tp.offset >= _NOTHING_COMMITTED else low
            starts.append(TopicPartition(topic, tp.partition, start))
            if high > start:
                ends[tp.partition] = high
        consumer.assign(starts)
        return ends

    def _drop_finished(self, consumer: Consumer, ends: dict[int, int]) -> None:
        """Forget partitions whose position reached their end (offsets may skip, e.g. transaction markers)."""
        positions = consumer.position([TopicPartition(self.config.kafka_topic, p) for p in ends])
        for tp in positions:
            if tp.offset >= ends.get(tp.partition, 0):
                ends.pop(tp.partition, None)

    def _limit_reached(self) -> bool:
        return self.options.max_messages is not None and self.summary.replayed >= self.options.max_messages

    def _replay_one(self, consumer: Consumer, producer: Producer | None, raw: KafkaMessage) -> None:
        target = original_topic(raw, self.options.to_topic)
        if producer is None:
            self.echo(f"would replay {where(raw)} to {target} ({_describe(raw)})")
            self.summary.replayed += 1
            return
        why = republish(producer, [(raw, target)], self.options.timeout)[0]
        if why is not None:
            self.errors.raise_if_rejected()  # the producer's own credentials may be the cause
            raise DeadLetterError(
                f"could not republish {where(raw)} to {target!r} ({why}); it stays in the dead-letter topic and "
                "its offset was not committed; fix the cause and run the replay again"
            )
        done = locate(raw)
        consumer.commit(offsets=[TopicPartition(done.topic, done.partition, done.offset + 1)], asynchronous=False)
        self.summary.replayed += 1
        self.echo(f"replayed {where(raw)} to {target}")

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal() or error.code() == KafkaError._FATAL:
            raise FatalKafkaError(f"fatal Kafka error while replaying: {error.str()}; nothing more was replayed")
        logger.warning("Kafka reported %s while replaying; polling goes on.", error.str())


def original_topic(raw: KafkaMessage, to_topic: str | None = None) -> str:
    """Where a parked message goes back to: ``to_topic`` if given, else its ``dlt.original.topic`` header."""
    if to_topic:
        return to_topic
    for name, value in headers_of(raw):
        if name == HEADER_TOPIC and value:
            return value.decode("utf-8")
    raise ConfigurationError(
        f"{where(raw)} has no {HEADER_TOPIC} header, so its original topic is unknown; pass --to TOPIC"
    )


def republish(producer: Producer, copies: Sequence[tuple[KafkaMessage, str]], timeout: float) -> list[str | None]:
    """
    Produce each parked message to its target (key, value and own headers; the ``dlt.*`` headers removed)
    and wait up to ``timeout`` for the broker. Return, per copy, None once confirmed, else why it was not.

    Both ``replay_dead_letters`` and the operator console replay through here; each records a copy as
    replayed (a committed offset, a database row) only when its entry is None.
    """
    outcomes: list[list[KafkaError | None]] = []
    for raw, target in copies:
        # Typed as produce() takes them (its value type is wider than what a consumer gets).
        headers: list[tuple[str, str | bytes | None]] = [
            (name, value) for name, value in headers_of(raw) if not name.startswith(HEADER_PREFIX)
        ]
        outcome: list[KafkaError | None] = []
        outcomes.append(outcome)
        producer.produce(
            target,
            value=raw.value(),
            key=raw.key(),
            headers=headers,
            on_delivery=lambda error, _message, seen=outcome: seen.append(error),  # type: ignore[misc]
        )
    producer.flush(timeout)
    return [("no delivery report" if not seen else seen[0].str() if seen[0] is not None else None) for seen in outcomes]


def _describe(raw: KafkaMessage) -> str:
    headers = dict(headers_of(raw))
    reason = (headers.get(HEADER_REASON) or b"?").decode("utf-8", "replace")
    exception = (headers.get(HEADER_EXCEPTION_CLASS) or b"").decode("utf-8", "replace")
    return f"reason {reason}" + (f", {exception}" if exception else "")
