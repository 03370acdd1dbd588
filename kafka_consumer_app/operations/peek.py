"""
Reading chosen offsets of a topic without a consumer group: what the operator console and the lag report look at.

:class:`TopicReader` is a librdkafka consumer with the connection and security options of
``consume_events`` that only ever *assigns* partitions at chosen offsets and reads a range: it never
subscribes (so it joins no group and causes no rebalance) and never commits (auto-commit is off and
no offset is stored), so it can run next to the consumers of the same topic.
"""

from __future__ import annotations

import dataclasses
import time
from types import TracebackType
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from kafka_consumer_app.client_errors import ClientErrors, metadata_within, reason
from kafka_consumer_app.engine.client import consumer_options
from kafka_consumer_app.exceptions import BrokerUnavailableError, ConfigurationError, TopicNotFoundError
from kafka_consumer_app.settings.topics import TopicConfig

#: The group id the reader's client carries (librdkafka wants one); it never joins it nor commits in it.
READER_GROUP = "kafka-consumer-app-reader"
_MANAGED = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
    "auto.offset.reset": "earliest",
}


class TopicReader:
    """Reads ranges of offsets of one topic by assigning partitions by hand; use it as a context manager."""

    def __init__(self, config: TopicConfig, topic: str) -> None:
        self.config = dataclasses.replace(config, group_id=READER_GROUP)
        self.topic = topic
        self.timeout = config.connect_timeout
        self.errors = ClientErrors()
        try:
            self._consumer = Consumer(consumer_options(self.config, self.errors.record, _MANAGED))
        except KafkaException as error:
            raise ConfigurationError(
                f"librdkafka refused the configuration ({reason(error)}); fix that option in "
                "KAFKA_CONSUMER['CONSUMER_CONFIG']"
            ) from error

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._consumer.close()

    def partitions(self) -> list[int]:
        """The topic's partitions; :class:`TopicNotFoundError` when it does not exist."""
        servers = self.config.bootstrap_servers
        metadata = metadata_within(self._consumer, self.topic, servers, self.timeout, self.errors)
        found = metadata.topics.get(self.topic)
        if found is None or found.error is not None:
            raise TopicNotFoundError(f"topic {self.topic!r} does not exist on {servers}; create it or fix the settings")
        return sorted(found.partitions)

    def watermarks(self, partition: int) -> tuple[int, int]:
        """The partition's earliest retained offset and its end offset."""
        low, high = self._call(lambda: self._consumer.get_watermark_offsets(self._tp(partition), timeout=self.timeout))
        return int(low), int(high)

    def offset_at(self, partition: int, timestamp_ms: int) -> int | None:
        """The first offset whose timestamp is at or after ``timestamp_ms``; None when there is none."""
        found = self._call(lambda: self._consumer.offsets_for_times([self._tp(partition, timestamp_ms)], self.timeout))
        offset = int(found[0].offset)
        return offset if offset >= 0 else None

    def read_range(self, partition: int, start: int, stop: int) -> list[KafkaMessage]:
        """The messages of ``partition`` from offset ``start`` up to, not including, ``stop`` (or its end)."""
        if stop <= start:
            return []
        self._consumer.assign([self._tp(partition, start)])
        found: list[KafkaMessage] = []
        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline:
                raw = self._consumer.poll(0.5)
                if raw is None or raw.partition() != partition:
                    continue
                error = raw.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return found
                    self._raise_if_fatal(error)
                    continue
                offset = raw.offset() or 0
                if offset < stop:
                    found.append(raw)
                if offset + 1 >= stop:
                    return found
        finally:
            self._consumer.unassign()
        raise BrokerUnavailableError(
            f"could not read {self.topic}[{partition}] offsets {start}..{stop - 1} within {self.timeout:g}s; "
            "check that the brokers are up (KAFKA_CONSUMER['BOOTSTRAP_SERVERS']) and try again"
        )

    def timestamp_at(self, partition: int, offset: int) -> int | None:
        """The timestamp (ms since the epoch) of the message at ``offset``; None when it is gone or has none."""
        found = [raw for raw in self.read_range(partition, offset, offset + 1) if raw.offset() == offset]
        if not found:
            return None
        kind, timestamp = found[0].timestamp()
        return int(timestamp) if kind else None

    def _tp(self, partition: int, offset: int = -1001) -> TopicPartition:
        return TopicPartition(self.topic, partition, offset)

    def _call(self, request: Any) -> Any:
        try:
            return request()
        except KafkaException as error:
            self.errors.raise_if_rejected()
            raise BrokerUnavailableError(
                f"could not read the offsets of {self.topic!r} ({reason(error)}); check that the brokers at "
                f"{self.config.bootstrap_servers} are up and try again"
            ) from error

    def _raise_if_fatal(self, error: KafkaError) -> None:
        if error.fatal():
            self.errors.raise_if_rejected()
            raise BrokerUnavailableError(f"fatal Kafka error while reading {self.topic!r}: {error.str()}")
