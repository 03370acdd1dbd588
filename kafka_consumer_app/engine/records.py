"""
From confluent-kafka's message to ours: where a consumed message sits, and the :class:`Message` receivers get.

confluent-kafka types a message's ``topic()``, ``partition()`` and ``offset()`` as optional,
because a message it builds for an error may lack them. A message the loop handles is never
such a one (errors are taken out before), so :func:`locate` checks that once and the rest of
the engine works with plain values.
"""

from __future__ import annotations

from typing import NamedTuple

from confluent_kafka import Message as KafkaMessage
from confluent_kafka import TopicPartition

from kafka_consumer_app.message import Message, coordinates, decode_event_type, headers_of, to_datetime
from kafka_consumer_app.serialization import deserialize, get_deserializer
from kafka_consumer_app.settings.topics import TopicConfig


class Location(NamedTuple):
    """Where a consumed message sits: its topic, partition and offset."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        """``topic[partition]@offset``."""
        return coordinates(self.topic, self.partition, self.offset)

    def topic_partition(self) -> TopicPartition:
        """The message's partition at the message's offset, for seek() and pause()."""
        return TopicPartition(self.topic, self.partition, self.offset)


def locate(raw: KafkaMessage) -> Location:
    """The location of a consumed (not an error) message; a message without one is a client bug."""
    topic, partition, offset = raw.topic(), raw.partition(), raw.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError(
            f"confluent-kafka returned a message without coordinates: {coordinates(topic, partition, offset)}"
        )
    return Location(topic, partition, offset)


def where(raw: KafkaMessage) -> str:
    """``topic[partition]@offset`` of ``raw``, for log lines and errors."""
    return coordinates(raw.topic(), raw.partition(), raw.offset())


class MessageConverter:
    """Turns a consumed confluent-kafka message into the :class:`Message` that receivers get."""

    def __init__(self, config: TopicConfig) -> None:
        self._value_deserializer = get_deserializer(config.deserializer)
        self._key_deserializer = get_deserializer(config.key_deserializer)

    def to_message(self, raw: KafkaMessage) -> Message:
        """Deserialize ``raw``'s key and value; raises DeserializationError for a malformed message."""
        topic, partition, offset = locate(raw)
        headers = headers_of(raw)
        return Message(
            topic=topic,
            partition=partition,
            offset=offset,
            key=deserialize(self._key_deserializer, raw.key(), "key", topic, headers),
            value=deserialize(self._value_deserializer, raw.value(), "value", topic, headers),
            headers=headers,
            timestamp=to_datetime(raw.timestamp()),
            event_type=decode_event_type(headers),
        )
