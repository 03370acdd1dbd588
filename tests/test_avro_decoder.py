"""
The cached Avro decoder against confluent-kafka's AvroDeserializer: the same records, the same errors.

Both decode the same bytes, serialized by confluent-kafka's own AvroSerializer, with one registry
client of the real registry (the ``schema_registry_server`` fixture), so the errors compared are
that registry's answers. Every comparison decodes each message twice with the cached decoder, so
that the second decode is the one on its fast path (the schema id seen before).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.schema_registry_client import Rule, RuleSet
from confluent_kafka.serialization import MessageField, SerializationContext
from opaque_keys.edx.keys import CourseKey
from openedx_events.event_bus.avro.deserializer import AvroSignalDeserializer
from openedx_events.event_bus.avro.serializer import AvroSignalSerializer
from openedx_events.learning.data import CourseData, CourseEnrollmentData, UserData, UserPersonalData
from openedx_events.learning.signals import COURSE_ENROLLMENT_CREATED

from kafka_consumer_app.engine.avro_decoder import CachedAvroDeserializer, fast_path_schema

#: The subjects are named after the topic: one per test run, as the registry lives for the whole session.
TOPIC = f"decoder-topic-{uuid.uuid4().hex[:8]}"

ORDER = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "prices", "type": {"type": "map", "values": "double"}},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {"name": "blob", "type": "bytes"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {
            "name": "lines",
            "type": {
                "type": "array",
                "items": {"type": "record", "name": "Line", "fields": [{"name": "sku", "type": "string"}]},
            },
        },
    ],
}
#: A reader of ORDER that drops a field and adds one with a default (schema resolution).
ORDER_READER = {
    **ORDER,
    "fields": [field for field in ORDER["fields"] if field["name"] != "blob"]
    + [{"name": "channel", "type": "string", "default": "web"}],
}


def order(index: int) -> dict[str, Any]:
    return {
        "id": index,
        "note": None if index % 2 else f"note {index}",
        "status": "PAID",
        "tags": ["a", "é"],
        "prices": {"x": 1.5},
        "digest": b"\x00\x01\x02\x03",
        "blob": b"\xff" * index,
        "at": datetime(2026, 12, 2, 10, 30, 15, 123000, tzinfo=UTC),
        "day": date(2026, 12, 2),
        "ref": uuid.UUID(int=index),
        "amount": Decimal("12.34"),
        "lines": [{"sku": "SKU-1"}, {"sku": "SKU-2"}],
    }


@pytest.fixture
def client(schema_registry_server: Any) -> SchemaRegistryClient:
    """A registry client of its own (an empty cache) for the session's registry."""
    return SchemaRegistryClient({"url": schema_registry_server.url})


def serialize(client: SchemaRegistryClient, schema: Any, value: Any, field: str = MessageField.VALUE) -> bytes:
    text = schema if isinstance(schema, str) else json.dumps(schema)
    data = AvroSerializer(client, text)(value, SerializationContext(TOPIC, field))
    assert data is not None
    return data


def context(field: str = MessageField.VALUE, headers: list[tuple[str, bytes]] | None = None) -> SerializationContext:
    return SerializationContext(TOPIC, field, headers or [])


def outcome(decode: Callable[[], Any]) -> tuple[str, Any]:
    """What a decode gives: ("ok", the value) or ("error", the exception's type and text)."""
    try:
        return ("ok", decode())
    except Exception as error:  # every error is compared, whatever its type
        return ("error", (type(error), str(error)))


def both(
    client: SchemaRegistryClient,
    data: bytes,
    reader: str | None = None,
    from_dict: Any = None,
    field: str = "value",
    headers: list[tuple[str, bytes]] | None = None,
) -> tuple[tuple[str, Any], list[tuple[str, Any]]]:
    """confluent-kafka's outcome, and the cached decoder's on its first and its second decode of ``data``."""
    confluent = AvroDeserializer(client, reader, from_dict=from_dict)
    cached = CachedAvroDeserializer(client, reader, from_dict)
    message_field = MessageField.KEY if field == "key" else MessageField.VALUE
    expected = outcome(lambda: confluent(data, context(message_field, headers)))
    got = [outcome(lambda: cached(data, TOPIC, field, tuple(headers or ()))) for _ in range(2)]
    return expected, got


def typed(value: Any) -> Any:
    """``value`` with the type of every part, so that equal-but-different types (1 and 1.0) compare unequal."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value), value)


@pytest.mark.parametrize("reader", [None, json.dumps(ORDER), json.dumps(ORDER_READER)])
def test_records_decode_to_the_same_values_and_types_as_confluent_kafkas_deserializer(client, reader):
    data = [serialize(client, ORDER, order(index)) for index in range(3)]

    for item in data:
        expected, got = both(client, item, reader)
        assert expected[0] == "ok"
        assert [(kind, typed(value)) for kind, value in got] == [(expected[0], typed(expected[1]))] * 2


def test_a_primitive_key_decodes_as_confluent_kafka_decodes_it(client):
    data = serialize(client, '"string"', "ada", MessageField.KEY)

    expected, got = both(client, data, field="key")

    assert expected == ("ok", "ada") and got == [expected, expected]


def test_open_edx_event_data_is_the_same_as_with_edx_event_bus_kafkas_deserializer(client):
    course = CourseData(
        course_key=CourseKey.from_string("course-v1:edX+DemoX+2026"),
        display_name="Demo",
        start=datetime(2026, 9, 1, tzinfo=UTC),
        end=None,
    )
    user = UserData(id=7, is_active=True, pii=UserPersonalData(username="ada", email="ada@example.com", name="Ada"))
    event = {
        "enrollment": CourseEnrollmentData(
            user=user, course=course, mode="audit", is_active=True, creation_date=datetime(2026, 11, 27, tzinfo=UTC)
        )
    }
    serializer = AvroSignalSerializer(COURSE_ENROLLMENT_CREATED)
    data = serialize(client, serializer.schema_string(), serializer.to_dict(event))
    signal_avro = AvroSignalDeserializer(COURSE_ENROLLMENT_CREATED)

    def from_dict(record: dict[str, Any], ctx: Any = None) -> Any:
        return signal_avro.from_dict(record)

    expected, got = both(client, data, signal_avro.schema_string(), from_dict)

    assert expected == ("ok", event) and got == [expected, expected]


def malformed(client: SchemaRegistryClient) -> dict[str, bytes]:
    """Bytes that are not a valid message, by kind; the known schema id is ORDER's."""
    valid = serialize(client, ORDER, order(1))
    return {
        "empty": b"",
        "only the prefix": valid[:5],
        "truncated record": valid[:-3],
        "garbage after the prefix": valid[:5] + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        "a bad enum index": valid[:5] + b"\x02\x02\x08" + valid[8:],
        "unknown schema id": b"\x00" + (987654).to_bytes(4, "big") + valid[5:],
        "invalid magic byte": b'{"user": "ada"}',
        "magic byte 1 (a GUID) unknown": b"\x01" + uuid.UUID(int=5).bytes + valid[5:],
    }


@pytest.mark.parametrize(
    "kind",
    [
        "empty",
        "only the prefix",
        "truncated record",
        "garbage after the prefix",
        "a bad enum index",
        "unknown schema id",
        "invalid magic byte",
        "magic byte 1 (a GUID) unknown",
    ],
)
def test_malformed_bytes_raise_the_same_error_as_confluent_kafkas_deserializer_even_once_the_schema_is_cached(
    client, kind
):
    data = malformed(client)[kind]
    cached = CachedAvroDeserializer(client)
    cached(serialize(client, ORDER, order(2)), TOPIC, "value", ())  # ORDER's id is now on the fast path

    expected = outcome(lambda: AvroDeserializer(client)(data, context()))
    got = outcome(lambda: cached(data, TOPIC, "value", ()))

    assert expected[0] == "error"
    assert got == expected


def test_a_schema_id_in_a_header_is_read_by_confluent_kafkas_path(client):
    data = serialize(client, ORDER, order(3))
    header = [("__value_schema_id", b"\x01" + uuid.UUID(int=9).bytes)]  # a GUID the registry does not know

    expected, got = both(client, data, headers=header)

    assert expected[0] == "error" and got == [expected, expected]


def test_the_bytes_type_is_read_raw_as_confluent_kafka_reads_it(client):
    data = serialize(client, '"bytes"', b"\x00\x01raw")

    expected, got = both(client, data)

    assert expected[0] == "ok" and got == [expected, expected]


def test_a_writer_schema_with_data_contract_rules_stays_on_confluent_kafkas_path():
    rule = Rule("check", None, "CONDITION", "READ", "CEL", None, None, "true", None, None, False)
    rules = RuleSet(migration_rules=None, domain_rules=[rule], encoding_rules=None)
    with_rules = Schema(json.dumps(ORDER), "AVRO", rule_set=rules)
    empty_rule_set = Schema(json.dumps(ORDER), "AVRO", rule_set=RuleSet(None, None))

    assert fast_path_schema(with_rules) is None
    assert fast_path_schema(empty_rule_set) is not None


def test_once_a_schema_id_decoded_its_messages_are_decoded_without_confluent_kafkas_deserializer(client):
    first, second = (serialize(client, ORDER, order(index)) for index in (4, 5))
    cached = CachedAvroDeserializer(client)
    cached(first, TOPIC, "value", ())

    def refuse(data: bytes, ctx: Any) -> Any:
        raise AssertionError("the AvroDeserializer was called again for a schema id already seen")

    cached.confluent = refuse  # type: ignore[assignment]

    assert cached(second, TOPIC, "value", ())["id"] == 5
