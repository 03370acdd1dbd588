"""Deserializers: built-in names, dotted paths, tombstones, and the errors bad input gives."""

from __future__ import annotations

import re

import pytest

from kafka_consumer_app.exceptions import ConfigurationError, DeserializationError
from kafka_consumer_app.serialization import deserialize, deserializer_problem, get_deserializer

#: Not callable; a dotted path to it is a configuration error.
NOT_CALLABLE = 42

calls: list[bytes] = []


def shout(data: bytes) -> str:
    """A custom deserializer loaded by dotted path."""
    calls.append(data)
    return data.decode().upper()


def explode(data: bytes) -> object:
    raise ValueError("custom format violated")


def test_json_deserializer_decodes_json_bytes():
    assert get_deserializer("json")(b'{"id": 7, "tags": ["a"]}') == {"id": 7, "tags": ["a"]}


def test_str_deserializer_decodes_utf8_text():
    assert get_deserializer("str")("café".encode()) == "café"


def test_bytes_deserializer_returns_the_raw_bytes():
    assert get_deserializer("bytes")(b"\x00\xff") == b"\x00\xff"


def test_dotted_path_loads_the_named_callable():
    assert get_deserializer(f"{__name__}.shout") is shout


def test_deserialize_applies_a_dotted_path_deserializer():
    assert deserialize(get_deserializer(f"{__name__}.shout"), b"hello", "value") == "HELLO"


def test_tombstone_passes_through_as_none():
    assert deserialize(get_deserializer("json"), None, "value") is None


def test_tombstone_does_not_call_the_deserializer():
    calls.clear()
    deserialize(shout, None, "value")
    assert calls == []


def test_malformed_json_raises_deserialization_error():
    with pytest.raises(DeserializationError):
        deserialize(get_deserializer("json"), b"{not json", "value")


def test_invalid_utf8_for_str_raises_deserialization_error():
    with pytest.raises(DeserializationError):
        deserialize(get_deserializer("str"), b"\xff\xfe", "key")


def test_custom_deserializer_exception_becomes_deserialization_error_naming_its_type_and_message():
    with pytest.raises(DeserializationError, match="ValueError: custom format violated"):
        deserialize(explode, b"x", "value")


def test_deserialization_error_names_the_part_of_the_message_that_failed():
    with pytest.raises(DeserializationError, match="cannot decode the message key"):
        deserialize(get_deserializer("json"), b"{", "key")


def test_deserialization_error_keeps_the_original_exception_as_its_cause():
    with pytest.raises(DeserializationError) as caught:
        deserialize(explode, b"x", "value")
    assert isinstance(caught.value.__cause__, ValueError)


@pytest.mark.parametrize("spec", ["json", "str", "bytes", f"{__name__}.shout", "json.loads"])
def test_usable_deserializers_have_no_problem(spec):
    assert deserializer_problem(spec) is None


def test_unknown_builtin_name_problem_lists_the_builtin_names():
    assert deserializer_problem("yaml") == "is not one of json, str, bytes and not a dotted path"


def test_non_importable_module_problem_says_it_cannot_be_imported():
    assert deserializer_problem("no_such_module_xyz.decode").startswith("cannot be imported: ")


def test_missing_attribute_problem_says_it_cannot_be_imported():
    assert deserializer_problem(f"{__name__}.no_such_function").startswith("cannot be imported: ")


def test_non_callable_problem_says_it_is_not_callable():
    assert deserializer_problem(f"{__name__}.NOT_CALLABLE") == "is not callable"


@pytest.mark.parametrize("spec", ["", None, 3, ["json"]], ids=["empty", "none", "int", "list"])
def test_non_string_or_empty_spec_problem_asks_for_a_non_empty_string(spec):
    assert deserializer_problem(spec) == f"must be a non-empty string, not {spec!r}"


def test_get_deserializer_raises_configuration_error_naming_the_spec_and_problem():
    spec = f"{__name__}.NOT_CALLABLE"
    with pytest.raises(ConfigurationError, match=re.escape(f"deserializer {spec!r} is not callable")):
        get_deserializer(spec)


@pytest.mark.parametrize("spec", [".", "..", ".decode", "module..decode", "my-module.decode"])
def test_a_path_that_is_not_dotted_identifiers_is_a_problem_not_an_exception(spec):
    assert deserializer_problem(spec) == "is not one of json, str, bytes and not a dotted path"
