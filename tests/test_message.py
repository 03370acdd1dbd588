"""The immutable Message receivers get, and the helpers that build it from a Kafka message."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Message as KafkaMessage

from kafka_consumer_app.exceptions import DeserializationError
from kafka_consumer_app.message import ConsumedMessage, Message, decode_event_type, to_datetime
from kafka_consumer_app.serialization import deserialize, get_deserializer

SECRET = "alice@example.com"


def make_message(headers=(), value=None) -> Message:
    return Message(
        topic="prod-user-events",
        partition=3,
        offset=42,
        key="user-1",
        value=value if value is not None else {"email": SECRET},
        headers=tuple(headers),
        timestamp=None,
        event_type=None,
    )


def test_message_fields_cannot_be_reassigned():
    message = make_message()
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.value = {"email": "changed"}  # type: ignore[misc]


def test_messages_with_the_same_fields_are_equal():
    assert make_message() == make_message()


def test_header_returns_the_last_value_of_a_repeated_header():
    message = make_message(headers=[("trace", b"first"), ("other", b"x"), ("trace", b"last")])
    assert message.header("trace") == b"last"


def test_header_returns_none_when_the_header_is_absent():
    assert make_message(headers=[("trace", b"x")]).header("missing") is None


def test_header_names_are_case_sensitive():
    assert make_message(headers=[("Trace", b"x")]).header("trace") is None


def test_to_datetime_converts_milliseconds_to_the_same_instant():
    assert to_datetime((1, 1_700_000_000_123)) == datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC)


def test_to_datetime_returns_an_aware_datetime_in_utc():
    assert to_datetime((1, 1_700_000_000_123)).utcoffset() == timedelta(0)


def test_to_datetime_accepts_log_append_time_timestamps():
    assert to_datetime((2, 0)) == datetime(1970, 1, 1, tzinfo=UTC)


def test_to_datetime_returns_none_for_timestamp_type_not_available():
    assert to_datetime((0, -1)) is None


def test_to_datetime_returns_none_without_a_timestamp():
    assert to_datetime(None) is None


def test_decode_event_type_returns_the_ce_type_header_as_text():
    assert decode_event_type((("ce_type", b"org.openedx.learning.course.enrollment.created.v1"),)) == (
        "org.openedx.learning.course.enrollment.created.v1"
    )


def test_decode_event_type_uses_the_last_ce_type_header():
    assert decode_event_type((("ce_type", b"old.v1"), ("ce_id", b"1"), ("ce_type", b"new.v1"))) == "new.v1"


def test_decode_event_type_returns_none_without_a_ce_type_header():
    assert decode_event_type((("ce_id", b"1"),)) is None


def test_decode_event_type_returns_none_when_ce_type_is_not_utf8():
    assert decode_event_type((("ce_type", b"\xff\xfe"),)) is None


def test_str_of_a_message_shows_topic_partition_and_offset():
    assert str(make_message()) == "prod-user-events[3]@42"


def test_str_of_a_message_does_not_show_its_payload():
    assert SECRET not in str(make_message())


# -- the message the consumer builds: decoded on first read --------------------------------


def consumed(key=b"user-1", headers=(("ce_type", b"user.created"),), stamp=(1, 1_700_000_000_123), decode=None):
    """A ConsumedMessage of a confluent-kafka message, as MessageConverter builds it."""
    raw = KafkaMessage(
        topic="prod-user-events", partition=3, offset=42, key=key, value=b"{}", headers=list(headers), timestamp=stamp
    )
    decode = decode or (lambda raw, message: deserialize(get_deserializer("str"), raw.key(), "key"))
    return ConsumedMessage.of(raw, ("prod-user-events", 3, 42), {"email": SECRET}, decode)


def test_a_consumed_message_decodes_its_key_on_first_read_only():
    calls = []

    def decode(raw, message):
        calls.append(raw.key())
        return raw.key().decode()

    message = consumed(decode=decode)
    assert calls == []
    assert (message.key, message.key) == ("user-1", "user-1")
    assert calls == [b"user-1"]


def test_a_consumed_message_equals_the_message_of_the_same_fields():
    message = consumed()
    assert message == Message(
        topic="prod-user-events",
        partition=3,
        offset=42,
        key="user-1",
        value={"email": SECRET},
        headers=(("ce_type", b"user.created"),),
        timestamp=datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC),
        event_type="user.created",
    )


def test_a_consumed_message_without_timestamp_or_headers_reads_none_and_empty():
    message = consumed(headers=(), stamp=(0, -1))
    assert (message.headers, message.timestamp, message.event_type) == ((), None, None)


def test_a_consumed_message_fields_cannot_be_reassigned():
    message = consumed()
    for name in ("key", "headers", "timestamp", "event_type", "value"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(message, name, None)


def test_a_consumed_key_that_cannot_be_decoded_raises_deserialization_error_at_every_read():
    message = consumed(key=b"\xff")
    for _ in range(2):
        with pytest.raises(DeserializationError, match="cannot decode the message key") as raised:
            _ = message.key
        assert not isinstance(raised.value.__context__, AttributeError), "the lazy read leaks into the traceback"


def test_a_consumed_message_survives_pickle_and_replace_with_every_field():
    message = consumed()
    assert pickle.loads(pickle.dumps(message)) == message
    changed = dataclasses.replace(message, value={"email": "other"})
    assert (changed.key, changed.event_type, changed.value) == ("user-1", "user.created", {"email": "other"})


def test_repr_of_a_consumed_message_shows_no_key_value_or_headers():
    text = repr(consumed())
    assert SECRET not in text and "user-1" not in text and "prod-user-events" in text
