"""
Avro in the Confluent wire format: values (and keys) decoded with the writer's schema from a schema registry.

Needs the ``avro`` extra (``pip install kafka_consumer_app[avro]``) and the registry's address::

    KAFKA_CONSUMER = {
        ...,
        "SCHEMA_REGISTRY": {
            "URL": "https://schema-registry:8081",
            "BASIC_AUTH_USER_INFO": f"{os.environ['SR_KEY']}:{os.environ['SR_SECRET']}",  # optional
            "CONFIG": {"timeout": 10},  # optional: more SchemaRegistryClient options
        },
        "TOPICS": {"user-events": {"DESERIALIZER": "avro"}},
    }

``DESERIALIZER: "avro"`` gives receivers what the writer's schema describes: a dict for a
record. A message that is not in the wire format, or whose schema id the registry does not
know, is malformed (the failure policy, ``dlt.reason: malformed``). A registry that cannot be
reached, or that refuses the credentials, is no fault of the message: the consumer stops
(exit 1) without committing it, and decodes it again once restarted. Schemas are cached by
id, so a registry outage only matters for schema ids not seen since the process started.

The registry's credentials are never logged, nor put in an error message.
A URL that answers the registry's API with HTTP 404 (no registry there, or its path missing,
e.g. Apicurio Registry's ``/apis/ccompat/v7``) is bad configuration, not a malformed message:
the consumer stops the same way.
``mock://`` URLs give confluent-kafka's in-process mock registry (its schemas live in the one
client object, see :func:`schema_registry_client`).
"""

from __future__ import annotations

import importlib
import json
import threading
from functools import lru_cache
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from kafka_consumer_app.engine.avro_decoder import CachedAvroDeserializer
from kafka_consumer_app.exceptions import ConfigurationError, SchemaRegistryUnavailableError
from kafka_consumer_app.serialization import ContextDeserializer, DeserializationContext
from kafka_consumer_app.settings import base

#: HTTP statuses of the registry that say nothing about the message: try again after a restart.
UNAVAILABLE_STATUSES = frozenset({401, 403, 408, 429})
#: Of those, the ones that mean the credentials were refused.
CREDENTIAL_STATUSES = frozenset({401, 403})
#: The range of the error codes a registry's 404 carries when it does not know what was asked for
#: (Confluent's 40401 subject, 40402 version, 40403 schema; the mock registry's 40400).
NOT_FOUND_CODES = (40400, 40499)


def registry_config() -> dict[str, Any]:
    """The ``SchemaRegistryClient`` configuration that ``KAFKA_CONSUMER['SCHEMA_REGISTRY']`` describes."""
    registry = base.raw_settings().get("SCHEMA_REGISTRY")
    if not isinstance(registry, dict) or not registry.get("URL"):
        raise ConfigurationError(
            "Avro messages need a schema registry, and KAFKA_CONSUMER['SCHEMA_REGISTRY']['URL'] is not set; "
            "set it (and BASIC_AUTH_USER_INFO if the registry needs credentials)"
        )
    config = dict(registry.get("CONFIG") or {})
    config["url"] = registry["URL"]
    if registry.get("BASIC_AUTH_USER_INFO"):
        config["basic.auth.user.info"] = registry["BASIC_AUTH_USER_INFO"]
    return config


#: Registry clients by configuration: one per distinct SCHEMA_REGISTRY, for the life of the process.
_clients: dict[str, SchemaRegistryClient] = {}
_clients_lock = threading.Lock()
#: The SCHEMA_REGISTRY dict last resolved, and its client: every message asks for the client, and
#: the settings change (override_settings, a test's ``settings`` fixture) by replacing the dict.
_last: tuple[object, SchemaRegistryClient] | None = None


def schema_registry_client() -> SchemaRegistryClient:
    """
    The process's registry client for the current settings, made on first use and then reused.

    The client caches schemas by id, so it lives as long as ``SCHEMA_REGISTRY`` stays the same.
    While ``KAFKA_CONSUMER['SCHEMA_REGISTRY']`` is the same dict object as at the last call, that
    call's client is returned without reading the configuration again; a new dict (settings
    replaced) is resolved by its content, so equal configurations share one client. A
    ``mock://`` URL gives confluent-kafka's in-process mock registry. Its schemas live in that
    client object, so a test that produces with the mock registry registers through this very
    client (same process, same SCHEMA_REGISTRY).
    """
    global _last
    registry = base.raw_settings().get("SCHEMA_REGISTRY")
    last = _last
    if last is not None and last[0] is registry:
        return last[1]
    config = registry_config()
    key = json.dumps(config, sort_keys=True, default=repr)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = _new_client(config)
        client = _clients[key]
    _last = (registry, client)
    return client


def _new_client(config: dict[str, Any]) -> SchemaRegistryClient:
    try:
        return SchemaRegistryClient.new_client(config)
    except (ValueError, TypeError) as error:
        # The message names the option, never its value: the options include the credentials.
        raise ConfigurationError(
            f"KAFKA_CONSUMER['SCHEMA_REGISTRY'] is not a valid registry client configuration ({type(error).__name__}: "
            f"{_without_secrets(str(error), config)}); see SCHEMA_REGISTRY in docs/reference/settings.rst"
        ) from None


@lru_cache(maxsize=8)
def writer_schema_deserializer(client: SchemaRegistryClient) -> CachedAvroDeserializer:
    """A deserializer that decodes with the writer's schema, fetched by the id in each message."""
    return CachedAvroDeserializer(client)


def decode(deserializer: CachedAvroDeserializer, data: bytes, context: DeserializationContext) -> Any:
    """
    Run confluent-kafka's ``AvroDeserializer`` (with its work cached per schema id) on one message's key or value.

    Raises :class:`SchemaRegistryUnavailableError` when the registry cannot be reached, refuses
    the credentials, or the URL answers 404 without being a registry; anything else it raises
    (no wire format, an unknown schema id, bytes that do not fit the schema) makes the message malformed.
    """
    try:
        return deserializer(data, context.topic, context.field, context.headers)
    except SchemaRegistryError as error:
        _raise_if_not_the_message(error, deserializer.client, context)
        raise
    except _transport_errors() as error:
        raise SchemaRegistryUnavailableError(
            f"the schema registry is unreachable ({type(error).__name__}: {error}) while decoding a message of "
            f"{context.topic}, which was not committed; check KAFKA_CONSUMER['SCHEMA_REGISTRY']['URL'] and the network"
        ) from error


def _raise_if_not_the_message(
    error: SchemaRegistryError, client: SchemaRegistryClient, context: DeserializationContext
) -> None:
    """Raise SchemaRegistryUnavailableError when the registry's error is no fault of the message."""
    status = error.http_status_code
    if status in CREDENTIAL_STATUSES:
        raise SchemaRegistryUnavailableError(
            f"the schema registry refused the credentials (HTTP {status}) while decoding a message of "
            f"{context.topic}, which was not committed; check KAFKA_CONSUMER['SCHEMA_REGISTRY']"
            "['BASIC_AUTH_USER_INFO'] and the principal's permissions"
        ) from error
    if status in UNAVAILABLE_STATUSES or (isinstance(status, int) and status >= 500):
        raise SchemaRegistryUnavailableError(
            f"the schema registry failed (HTTP {status}) while decoding a message of {context.topic}, which "
            "was not committed; the consumer stops so that it decodes the message again once restarted"
        ) from error
    if status == 404 and not _registry_said_not_found(error) and not _serves_the_registry_api(client):
        raise SchemaRegistryUnavailableError(
            f"the schema registry URL answers HTTP 404 to the registry's API (while decoding a message of "
            f"{context.topic}, which was not committed); check that KAFKA_CONSUMER['SCHEMA_REGISTRY']['URL'] "
            "includes the API's path, e.g. /apis/ccompat/v7 for Apicurio Registry"
        ) from error


def _registry_said_not_found(error: SchemaRegistryError) -> bool:
    """Whether a 404 carries a registry's own "not found" code (404xx: subject, version, schema)."""
    code = error.error_code
    return isinstance(code, int) and NOT_FOUND_CODES[0] <= code <= NOT_FOUND_CODES[1]


def _serves_the_registry_api(client: SchemaRegistryClient) -> bool:
    """
    Whether the URL answers the registry's API (``GET /schemas/types``).

    Asked only after a 404 without a registry's code: a message's reference that the registry
    does not know (e.g. a schema GUID) can be answered that way, and so can a URL that misses the
    API's path. The first is the message's fault; the second would park every message.
    """
    try:
        client.get_schema_types()
    except SchemaRegistryError as error:
        return error.http_status_code != 404
    except _transport_errors():
        return False
    return True


@lru_cache(maxsize=1)
def _transport_errors() -> tuple[type[BaseException], ...]:
    """Network failures of the registry client: sockets, TLS, and the HTTP client's own transport errors."""
    errors: list[type[BaseException]] = [OSError]
    for module_name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module_name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _without_secrets(text: str, config: dict[str, Any]) -> str:
    """``text`` with the values of credential options masked."""
    for key, value in config.items():
        if ("auth" in key or "password" in key or "secret" in key) and isinstance(value, str) and value:
            text = text.replace(value, "***")
            for part in value.split(":"):
                if part:
                    text = text.replace(part, "***")
    return text


class AvroWireFormatDeserializer(ContextDeserializer):
    """``DESERIALIZER: "avro"``: the Confluent wire format, decoded with the writer's schema."""

    def __call__(self, data: bytes, context: DeserializationContext) -> Any:
        """Decode one key or value; a record becomes a dict."""
        return decode(writer_schema_deserializer(schema_registry_client()), data, context)


#: What the built-in name ``"avro"`` loads.
deserialize_avro = AvroWireFormatDeserializer()
