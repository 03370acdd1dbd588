"""
The Confluent wire format decoded as confluent-kafka's ``AvroDeserializer`` does, its per-message work cached.

confluent-kafka's ``AvroDeserializer`` decodes the record with fastavro's ``schemaless_reader``,
given the writer's schema (by the id after the magic byte) and the reader's. Around that one
call it does, for every message: the subject name lookup, two walks of the data-contract rules,
a recursive walk of the reader schema for inline tags (``get_inline_tags``) and an expansion of
it, whether or not the schema has any rule. For a writer schema without rules none of that
changes the record.

:class:`CachedAvroDeserializer` keeps that deserializer, and uses it for the first message of
each schema id and for everything it does not do itself, so that the registry requests, the
errors and the records stay confluent-kafka's. Once a schema id decoded, its writer schema (the
very ``Schema`` object the deserializer fetched) is parsed once, exactly as confluent-kafka
parses it; later messages with that id go straight to ``schemaless_reader`` with the same
parsed writer and reader schemas, the same arguments, hence the same record or the same error.

What stays on confluent-kafka's path, for every message: bytes that are not the version 0
framing (too short, another magic byte, a schema GUID), a schema id carried in a header, an id
the registry does not know (its error), a writer schema with data-contract rules,
references or another schema type, and the ``bytes`` type (which confluent-kafka reads raw).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any, cast

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.serde import set_original_key
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import parse_schema, schemaless_reader

from kafka_consumer_app.message import Headers

#: Where confluent-kafka looks for a schema id before the payload's prefix (``dual_schema_id_deserializer``).
SCHEMA_ID_HEADERS = {"key": "__key_schema_id", "value": "__value_schema_id"}
#: The framing this module decodes itself: magic byte 0, then a 4-byte big-endian schema id.
MAGIC_BYTE = 0
PREFIX_BYTES = 5

FromDict = Callable[[dict[str, Any], SerializationContext], Any]


def parse_avro(schema_str: str) -> Any:
    """Parse a schema declaration as confluent-kafka does (a bare primitive becomes ``{"type": ...}``)."""
    text = schema_str.strip()
    if text[0] not in "{[":
        text = '{"type":' + text + "}"
    return parse_schema(json.loads(text))


def fast_path_schema(schema: Schema | None) -> Any:
    """The parsed writer schema to decode with directly, or None when ``schema`` needs confluent-kafka's path."""
    if schema is None or schema.schema_str is None or schema.schema_type not in (None, "AVRO"):
        return None
    rules = schema.rule_set
    if schema.references or (
        rules is not None and (rules.domain_rules or rules.encoding_rules or rules.migration_rules)
    ):
        return None
    parsed = parse_avro(schema.schema_str)
    if parsed == "bytes" or (isinstance(parsed, dict) and parsed.get("type") == "bytes"):
        return None
    return parsed


class _SchemaCapture:
    """
    The registry client, as the wrapped AvroDeserializer sees it: it also remembers the writer schema of each id.

    Every other attribute is the client's own, so the deserializer's requests are unchanged.
    """

    def __init__(self, client: SchemaRegistryClient) -> None:
        self._client = client
        self.fetched: dict[int, Schema] = {}

    def get_schema(self, schema_id: int, *args: Any, **kwargs: Any) -> Schema:
        """The client's ``get_schema``, noting what it returned."""
        schema: Schema = self._client.get_schema(schema_id, *args, **kwargs)
        self.fetched[schema_id] = schema
        return schema

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class CachedAvroDeserializer:
    """
    confluent-kafka's ``AvroDeserializer``, with the parsed schemas cached per writer schema id (see the module).

    ``schema_str`` is the reader's schema (None: the writer's); ``from_dict`` turns the record
    into what receivers get, as the ``AvroDeserializer`` argument of the same name.
    """

    def __init__(
        self, client: SchemaRegistryClient, schema_str: str | None = None, from_dict: FromDict | None = None
    ) -> None:
        #: The registry client the schemas are fetched with.
        self.client = client
        self._capture = _SchemaCapture(client)
        self.confluent = AvroDeserializer(
            schema_registry_client=cast(SchemaRegistryClient, self._capture), schema_str=schema_str, from_dict=from_dict
        )
        self._reader = parse_avro(schema_str) if schema_str is not None else None
        self._from_dict = from_dict
        self._writers: dict[int, Any] = {}

    def __call__(self, data: bytes, topic: str, field: str, headers: Headers) -> Any:
        """Decode one key (``field="key"``) or value; raise what confluent-kafka's deserializer raises."""
        schema_id = self._framed_id(data, field, headers)
        writer = self._writers.get(schema_id) if schema_id is not None else None
        if writer is None:
            return self._through_confluent(data, topic, field, headers, schema_id)
        # As confluent-kafka's deserializer: the key's bytes are kept for the value's dead-letter rule actions.
        set_original_key(data if field == "key" else None)
        record = schemaless_reader(io.BytesIO(data[PREFIX_BYTES:]), writer, self._reader or writer, False)
        if self._from_dict is None:
            return record
        return self._from_dict(cast(dict[str, Any], record), _context(topic, field, headers))

    def _through_confluent(self, data: bytes, topic: str, field: str, headers: Headers, schema_id: int | None) -> Any:
        """Decode with confluent-kafka's deserializer; then, if the schema allows, parse it for the next messages."""
        result = self.confluent(data, _context(topic, field, headers))
        if schema_id is not None:
            parsed = fast_path_schema(self._capture.fetched.get(schema_id))
            if parsed is not None:
                self._writers[schema_id] = parsed
        return result

    @staticmethod
    def _framed_id(data: bytes, field: str, headers: Headers) -> int | None:
        """The schema id of version 0 framing, or None when confluent-kafka's path must read the id."""
        if len(data) <= PREFIX_BYTES or data[0] != MAGIC_BYTE:
            return None
        header = SCHEMA_ID_HEADERS[field]
        for key, _value in headers:
            if key == header:
                return None
        return int.from_bytes(data[1:PREFIX_BYTES], "big")


def _context(topic: str, field: str, headers: Headers) -> SerializationContext:
    """confluent-kafka's context of a key (``field="key"``) or value, with the message's headers."""
    return SerializationContext(topic, MessageField.KEY if field == "key" else MessageField.VALUE, list(headers))
