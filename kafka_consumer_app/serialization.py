"""
Deserializers: turn a message's raw key or value bytes into the object receivers get.

A deserializer is any callable ``f(data: bytes) -> object``. Built-in names are ``json``,
``str`` and ``bytes``; any other name is the dotted path of a callable. A tombstone (a
``None`` value) is passed to receivers as ``None`` without calling the deserializer.
Any exception a deserializer raises becomes a :class:`DeserializationError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.utils.module_loading import import_string

from kafka_consumer_app.exceptions import ConfigurationError, DeserializationError

Deserializer = Callable[[bytes], Any]


def _json(data: bytes) -> Any:
    return json.loads(data)


def _str(data: bytes) -> str:
    return data.decode("utf-8")


def _bytes(data: bytes) -> bytes:
    return data


BUILTIN: dict[str, Deserializer] = {"json": _json, "str": _str, "bytes": _bytes}


@lru_cache(maxsize=64)
def get_deserializer(spec: str) -> Deserializer:
    """Return the deserializer named by ``spec``; raise ConfigurationError when it cannot be loaded."""
    problem = deserializer_problem(spec)
    if problem:
        raise ConfigurationError(f"deserializer {spec!r} {problem}")
    return BUILTIN.get(spec) or import_string(spec)


def deserializer_problem(spec: Any) -> str | None:
    """Return why ``spec`` is not a usable deserializer, or None when it is."""
    if not isinstance(spec, str) or not spec:
        return f"must be a non-empty string, not {spec!r}"
    if spec in BUILTIN:
        return None
    if "." not in spec:
        return f"is not one of {', '.join(BUILTIN)} and not a dotted path"
    try:
        loaded = import_string(spec)
    except ImportError as error:
        return f"cannot be imported: {error}"
    if not callable(loaded):
        return "is not callable"
    return None


def deserialize(deserializer: Deserializer, data: bytes | None, what: str) -> Any:
    """Apply ``deserializer`` to ``data``; ``what`` ('key' or 'value') names the part in errors."""
    if data is None:
        return None
    try:
        return deserializer(data)
    except Exception as error:  # any failure of user or library code means "malformed"
        raise DeserializationError(f"cannot decode the message {what}: {type(error).__name__}: {error}") from error
