"""
Deserializers: turn a message's raw key or value bytes into the object receivers get.

A deserializer is any callable ``f(data: bytes) -> object``. Built-in names are ``json``,
``str``, ``bytes`` and ``avro`` (the Confluent wire format, with the ``avro`` extra); any
other name is the dotted path of a callable. A :class:`ContextDeserializer` is called as
``f(data, context)`` instead, with the message's topic and headers (Avro and Open edX
events need them). A tombstone (a ``None`` value) is passed to receivers as ``None``
without calling the deserializer. Any exception a deserializer raises becomes a
:class:`DeserializationError`, except a :class:`KafkaConsumerAppError` (the environment
failed, e.g. the schema registry is unreachable: no fault of the message), which stops the
consumer without committing the message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.utils.module_loading import import_string

from kafka_consumer_app.exceptions import ConfigurationError, DeserializationError, KafkaConsumerAppError
from kafka_consumer_app.message import Headers

Deserializer = Callable[..., Any]


@dataclass(frozen=True)
class DeserializationContext:
    """Where the bytes given to a :class:`ContextDeserializer` come from."""

    topic: str
    #: ``"key"`` or ``"value"``.
    field: str
    headers: Headers = ()


class ContextDeserializer:
    """Base class of deserializers called as ``f(data, context)``, with a :class:`DeserializationContext`."""

    def __call__(self, data: bytes, context: DeserializationContext) -> Any:
        """Decode ``data``; raise anything to mark the message as malformed."""
        raise NotImplementedError


_decode_json = json.JSONDecoder().decode


def _json(data: bytes) -> Any:
    # What json.loads(data) returns, without its encoding detection for the UTF-8 that nearly every
    # producer sends (RFC 8259): anything else (UTF-16, a BOM, or not JSON) goes to json.loads itself,
    # which decodes it or raises exactly its own error.
    try:
        return _decode_json(data.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError
        return json.loads(data)


def _str(data: bytes) -> str:
    return data.decode("utf-8")


def _bytes(data: bytes) -> bytes:
    return data


BUILTIN: dict[str, Deserializer] = {"json": _json, "str": _str, "bytes": _bytes}

#: Built-in names whose deserializer needs an optional extra: name -> (dotted path, extra).
OPTIONAL_BUILTIN: dict[str, tuple[str, str]] = {"avro": ("kafka_consumer_app.engine.avro.deserialize_avro", "avro")}


@lru_cache(maxsize=64)
def get_deserializer(spec: str) -> Deserializer:
    """Return the deserializer named by ``spec``; raise ConfigurationError when it cannot be loaded."""
    problem = deserializer_problem(spec)
    if problem:
        raise ConfigurationError(f"deserializer {spec!r} {problem}")
    path = OPTIONAL_BUILTIN[spec][0] if spec in OPTIONAL_BUILTIN else None
    builtin = None if path else BUILTIN.get(spec)
    if builtin is not None:
        return builtin
    loaded: Callable[..., Any] = import_string(path or spec)  # deserializer_problem() checked it is callable
    return loaded


def deserializer_problem(spec: Any) -> str | None:
    """Return why ``spec`` is not a usable deserializer, or None when it is."""
    if not isinstance(spec, str) or not spec:
        return f"must be a non-empty string, not {spec!r}"
    if spec in BUILTIN:
        return None
    if spec in OPTIONAL_BUILTIN:
        path, extra = OPTIONAL_BUILTIN[spec]
        try:
            import_string(path)
        except ImportError as error:
            return f"needs the {extra!r} extra (pip install kafka_consumer_app[{extra}]): {error}"
        return None
    if "." not in spec or not all(part.isidentifier() for part in spec.split(".")):
        # "." or ".decode" would reach import_module() as a relative import and raise there.
        return f"is not one of {', '.join(BUILTIN)} and not a dotted path"
    try:
        loaded = import_string(spec)
    except ImportError as error:
        return f"cannot be imported: {error}"
    if not callable(loaded):
        return "is not callable"
    return None


def deserialize(
    deserializer: Deserializer, data: bytes | None, what: str, topic: str = "", headers: Headers = ()
) -> Any:
    """
    Apply ``deserializer`` to ``data``; ``what`` ('key' or 'value') names the part in errors.

    ``topic`` and ``headers`` (the message's) reach a :class:`ContextDeserializer` in its context.
    """
    if data is None:
        return None
    try:
        if isinstance(deserializer, ContextDeserializer):
            return deserializer(data, DeserializationContext(topic, what, headers))
        return deserializer(data)
    except KafkaConsumerAppError:
        raise  # the environment failed, not the message: stop without committing it
    except Exception as error:  # any other failure of user or library code means "malformed"
        raise DeserializationError(f"cannot decode the message {what}: {type(error).__name__}: {error}") from error
