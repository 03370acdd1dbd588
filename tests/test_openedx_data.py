"""
The planned ``from_dict`` against openedx-events' ``AvroSignalDeserializer.from_dict``, on every serializable signal.

No broker: records are built from each signal's data classes (every attribute, nested ones
included), with the optional attributes set, set to a falsy value, or left out; both converters
must give equal objects of the same classes, or the same error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args, get_origin
from uuid import UUID

import attr
import pytest
from ccx_keys.locator import CCXLocator
from opaque_keys.edx.keys import CourseKey, UsageKey
from opaque_keys.edx.locator import (
    LibraryCollectionLocator,
    LibraryContainerLocator,
    LibraryLocatorV2,
    LibraryUsageLocatorV2,
)
from openedx_events.event_bus.avro.deserializer import AvroSignalDeserializer
from openedx_events.tooling import KNOWN_UNSERIALIZABLE_SIGNALS, OpenEdxPublicSignal

from kafka_consumer_app.engine.openedx import load_signals
from kafka_consumer_app.engine.openedx_data import event_data_converter

#: One value of each type openedx-events deserializes itself, as its serializer writes it.
CUSTOM = {
    CourseKey: "course-v1:edX+DemoX+2026",
    CCXLocator: "ccx-v1:edX+DemoX+2026+ccx@3",
    datetime: datetime(2026, 12, 2, 10, 30, 15, 250000, tzinfo=UTC).isoformat(),
    UsageKey: "block-v1:edX+DemoX+2026+type@problem+block@p1",
    LibraryCollectionLocator: "lib-collection:edX:lib1:col1",
    LibraryContainerLocator: "lct:edX:lib1:unit:u1",
    LibraryLocatorV2: "lib:edX:lib1",
    LibraryUsageLocatorV2: "lb:edX:lib1:problem:p1",
    UUID: "0b1f5e4c-cf7a-4d2e-9a52-5d7a1c3e8f01",
}
PRIMITIVE = {bool: True, int: 42, float: 2.5, str: "text", bytes: b"raw"}
FALSY = {bool: False, int: 0, float: 0.0, str: "", bytes: b""}


def record_of(data_type: Any, optional: str) -> Any:
    """A record value of ``data_type``; ``optional`` says what its optional attributes are: set, falsy or absent."""
    if data_type in CUSTOM:
        return CUSTOM[data_type]
    if data_type in PRIMITIVE:
        return PRIMITIVE[data_type]
    origin, args = get_origin(data_type), get_args(data_type)
    if origin is list:
        return [record_of(args[0], optional), record_of(args[0], optional)]
    if origin is dict:
        return {record_of(args[0], optional): record_of(args[1], optional)}
    if data_type in (dict, list):
        return data_type()
    assert attr.has(data_type), f"no sample for {data_type!r}: add one"
    record = {}
    for attribute in attr.fields(data_type):
        if attribute.default is attr.NOTHING or optional == "set":
            record[attribute.name] = record_of(attribute.type, optional)
        elif optional == "falsy":
            record[attribute.name] = FALSY.get(attribute.type)
    return record


def serializable_signals() -> list[OpenEdxPublicSignal]:
    load_signals()
    signals = []
    for signal in OpenEdxPublicSignal.all_events():
        if signal.event_type in KNOWN_UNSERIALIZABLE_SIGNALS:
            continue
        try:
            AvroSignalDeserializer(signal)
        except Exception:  # no schema: no Avro event of this signal can be consumed
            continue
        signals.append(signal)
    return signals


SIGNALS = serializable_signals()


def outcome(convert: Any, record: Any) -> Any:
    try:
        return "returned", convert(record)
    except Exception as error:  # compared with the other converter's
        return "raised", type(error), str(error)


def deep_types(value: Any) -> Any:
    """The classes inside ``value`` (attrs ``==`` compares classes only at the top of each object)."""
    if attr.has(type(value)):
        return type(value), [deep_types(getattr(value, a.name)) for a in attr.fields(type(value))]
    if isinstance(value, dict):
        return dict, [(deep_types(k), deep_types(v)) for k, v in value.items()]
    if isinstance(value, list):
        return list, [deep_types(item) for item in value]
    return type(value)


def test_there_are_many_signals_to_compare():
    assert len(SIGNALS) > 50


@pytest.mark.parametrize("optional", ["set", "falsy", "absent"])
@pytest.mark.parametrize("signal", SIGNALS, ids=[signal.event_type for signal in SIGNALS])
def test_event_data_is_the_same_as_openedx_events_from_dict(signal, optional):
    theirs = AvroSignalDeserializer(signal)
    ours = event_data_converter(signal, theirs.deserializers)
    record = {key: record_of(data_type, optional) for key, data_type in signal.init_data.items()}
    expected = outcome(theirs.from_dict, record)
    assert expected[0] == "returned"
    got = outcome(ours, record)
    assert got == expected
    assert deep_types(got[1]) == deep_types(expected[1])


def broken_records(signal: OpenEdxPublicSignal) -> list[Any]:
    """Records openedx-events refuses or mangles: a key missing, None or a bad string at each level."""
    record = {key: record_of(data_type, "set") for key, data_type in signal.init_data.items()}
    broken: list[Any] = [{}, {key: None for key in record}, {key: "not-a-record" for key in record}]
    for key, value in record.items():
        if isinstance(value, dict):
            for name in value:
                broken.append({**record, key: {k: v for k, v in value.items() if k != name}})
                broken.append({**record, key: {**value, name: None}})
                broken.append({**record, key: {**value, name: "course-v1:bad key"}})
    return broken


@pytest.mark.parametrize("signal", SIGNALS, ids=[signal.event_type for signal in SIGNALS])
def test_records_it_cannot_convert_raise_the_same_errors(signal):
    theirs = AvroSignalDeserializer(signal)
    ours = event_data_converter(signal, theirs.deserializers)
    for record in broken_records(signal):
        assert outcome(ours, record) == outcome(theirs.from_dict, record), record


def test_unsupported_types_are_left_to_openedx_events_and_raise_its_error():
    @attr.s(frozen=True)
    class Odd:
        fine = attr.ib(type=str)
        unknown = attr.ib(type=set, default=None)
        bare = attr.ib(type=list, default=None)

    signal = OpenEdxPublicSignal.__new__(OpenEdxPublicSignal)  # not registered: only init_data is read
    signal.init_data = {"odd": Odd, "items": list[Odd], "plain": list}
    theirs = AvroSignalDeserializer.__new__(AvroSignalDeserializer)
    theirs.signal, theirs.deserializers = signal, {}
    ours = event_data_converter(signal, {})
    for record in (
        {"odd": {"fine": "x"}, "items": [], "plain": [1]},
        {"odd": {"fine": "x", "unknown": {1}}, "items": [], "plain": [1]},
        {"odd": {"fine": "x"}, "items": [{"fine": "y"}], "plain": [1]},
    ):
        assert outcome(ours, record) == outcome(theirs.from_dict, record)


def test_a_signal_s_own_deserializers_are_used():
    signal = OpenEdxPublicSignal.__new__(OpenEdxPublicSignal)
    signal.init_data = {"when": datetime, "count": int}
    ours = event_data_converter(signal, {int: lambda text: int(text) * 2})
    assert ours({"when": CUSTOM[datetime], "count": "21"}) == {
        "when": datetime(2026, 12, 2, 10, 30, 15, 250000, tzinfo=UTC),
        "count": 42,
    }
