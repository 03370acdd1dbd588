"""
From confluent-kafka's message to ours: where a consumed message sits, and the :class:`Message` receivers get.

confluent-kafka types a message's ``topic()``, ``partition()`` and ``offset()`` as optional,
because a message it builds for an error may lack them. A message the loop handles is never
such a one (errors are taken out before), so :func:`locate` checks that once and the rest of
the engine works with plain values.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from confluent_kafka import Message as KafkaMessage
from confluent_kafka import TopicPartition

from kafka_consumer_app.message import ConsumedMessage, Message, coordinates, headers_of
from kafka_consumer_app.serialization import ContextDeserializer, deserialize, get_deserializer
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
    return _new_location(Location, (topic, partition, offset))  # what Location(...) does, without its checks


_new_location = tuple.__new__


def where(raw: KafkaMessage) -> str:
    """``topic[partition]@offset`` of ``raw``, for log lines and errors."""
    return coordinates(raw.topic(), raw.partition(), raw.offset())


class MessageConverter:
    """
    Turns a consumed confluent-kafka message into the :class:`Message` that receivers get.

    Only the value is decoded up front: a value that cannot be decoded makes the message
    malformed before any receiver runs. The key, the headers, the timestamp and the event type
    are decoded when first read (:class:`~kafka_consumer_app.message.ConsumedMessage`).
    """

    def __init__(self, config: TopicConfig) -> None:
        self._value_deserializer = get_deserializer(config.deserializer)
        self._key_deserializer = get_deserializer(config.key_deserializer)
        self._value_wants_headers = isinstance(self._value_deserializer, ContextDeserializer)
        self._key_wants_headers = isinstance(self._key_deserializer, ContextDeserializer)

    def to_message(self, raw: KafkaMessage, location: Location | None = None) -> Message:
        """Deserialize ``raw``'s value; raises DeserializationError for a malformed value."""
        location = location or locate(raw)
        if not self._value_wants_headers:
            value = deserialize(self._value_deserializer, raw.value(), "value", location.topic)
            return ConsumedMessage.of(raw, location, value, self._decode_key)
        headers = headers_of(raw)
        value = deserialize(self._value_deserializer, raw.value(), "value", location.topic, headers)
        message = ConsumedMessage.of(raw, location, value, self._decode_key)
        object.__setattr__(message, "headers", headers)  # read already: keep them (it is frozen to receivers)
        return message

    def _decode_key(self, raw: KafkaMessage, message: Message) -> Any:
        """The key of ``message``, for its first read; raises DeserializationError for a malformed key."""
        headers = message.headers if self._key_wants_headers else ()
        return deserialize(self._key_deserializer, raw.key(), "key", message.topic, headers)
