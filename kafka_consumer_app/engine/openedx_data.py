"""
A record made into event data as openedx-events' ``AvroSignalDeserializer.from_dict`` makes it, planned once.

openedx-events' ``_deserialized_avro_record_dict_to_object`` decides, for every value of every
message, what to do with it from its Python type: it merges its default deserializers with the
signal's into a new dict, looks the type up there, then among the Avro primitives, then tries
``get_origin`` and ``attrs``, recursively, per attribute. For a given signal those decisions
never change; only the data does.

:func:`event_data_converter` takes the same decisions once per signal, with the same tests in the
same order, and keeps for each type what to do: call its deserializer, keep the value as it is
(an Avro primitive, a list or dict of them), or build the attrs class from the attributes present
(an attribute whose value is falsy only when it has no default), each with its own plan. Every
other type (those openedx-events refuses, or one this planning could not look up) is left to
openedx-events' own function, which then converts it, or raises its own error, when reached.
The attrs objects are therefore equal, of the same classes, and built with the same calls.

The plan reads the default deserializers when it is made (openedx-events reads them per call;
they are a module constant). ``tests/test_openedx_data.py`` compares both on every signal.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, get_args, get_origin

import attr
from openedx_events.event_bus.avro.deserializer import (
    DEFAULT_DESERIALIZERS,
    _deserialized_avro_record_dict_to_object,
)
from openedx_events.event_bus.avro.types import PYTHON_TYPE_TO_AVRO_MAPPING, SIMPLE_PYTHON_TYPE_TO_AVRO_MAPPING
from openedx_events.tooling import OpenEdxPublicSignal

#: What to do with one value: None keeps it as it is.
Convert = Callable[[Any], Any] | None
#: One attribute of an attrs class: its name, whether it has no default, its value's plan.
Field = tuple[str, bool, Convert]


class EventDataConverter:
    """A signal's ``from_dict``: record -> ``{data key: object}``, as ``AvroSignalDeserializer.from_dict`` makes it."""

    __slots__ = ("fields",)

    def __init__(self, fields: list[tuple[str, Convert]]) -> None:
        self.fields = fields

    def __call__(self, record: dict[str, Any], ctx: Any = None) -> dict[str, Any]:
        """The event data of one record; raise what openedx-events raises on it."""
        return {key: record[key] if convert is None else convert(record[key]) for key, convert in self.fields}


def event_data_converter(
    signal: OpenEdxPublicSignal, deserializers: dict[type, Callable[[Any], Any]] | None = None
) -> EventDataConverter:
    """The converter of ``signal``'s records; ``deserializers`` are the ``AvroSignalDeserializer``'s own."""
    merged = {**DEFAULT_DESERIALIZERS, **(deserializers or {})}
    plans: dict[Any, Convert] = {}
    fields = []
    for key, data_type in signal.init_data.items():
        try:
            convert = _plan(data_type, merged, plans, deserializers)
        except Exception:  # a type this cannot look up: openedx-events' function meets it when it is reached
            convert = _theirs(data_type, deserializers)
        fields.append((key, convert))
    return EventDataConverter(fields)


def _plan(data_type: Any, merged: dict[Any, Any], plans: dict[Any, Convert], deserializers: Any) -> Convert:
    """What openedx-events does with a value of ``data_type``, decided as it decides, branch by branch."""
    if data_type in plans:
        return plans[data_type]
    origin = get_origin(data_type)
    if deserializer := merged.get(data_type):
        plan: Convert = deserializer
    elif _kept_as_is(data_type, origin):
        plan = None
    elif origin not in (list, dict) and hasattr(data_type, "__attrs_attrs__"):
        fields: list[Field] = []
        plans[data_type] = plan = functools.partial(_build, data_type, fields)  # before the attributes: recursion
        for attribute in data_type.__attrs_attrs__:
            required = attribute.default is attr.NOTHING
            fields.append((attribute.name, required, _plan(attribute.type, merged, plans, deserializers)))
    else:  # refused (no item type, items not primitive, no converter): openedx-events raises its own TypeError
        plan = _theirs(data_type, deserializers)
    plans[data_type] = plan
    return plan


def _kept_as_is(data_type: Any, origin: Any) -> bool:
    """Whether openedx-events returns a value of ``data_type`` itself: an Avro primitive, a list or dict of them."""
    if data_type in PYTHON_TYPE_TO_AVRO_MAPPING:
        return True
    args = get_args(data_type)
    if origin is list:
        return bool(args) and args[0] in SIMPLE_PYTHON_TYPE_TO_AVRO_MAPPING
    if origin is dict:
        return bool(args) and all(arg in SIMPLE_PYTHON_TYPE_TO_AVRO_MAPPING for arg in args)
    return False


def _build(data_type: Callable[..., Any], fields: list[Field], data: Any) -> Any:
    """The attrs object of ``data``: each attribute present, unless falsy with a default, converted."""
    transformed = {}
    for name, required, convert in fields:
        if name in data:
            sub_data = data[name]
            if sub_data or required:
                transformed[name] = sub_data if convert is None else convert(sub_data)
    return data_type(**transformed)


def _theirs(data_type: Any, deserializers: Any) -> Convert:
    """openedx-events' own conversion of a value of ``data_type``."""
    return functools.partial(_call_theirs, data_type, deserializers)


def _call_theirs(data_type: Any, deserializers: Any, data: Any) -> Any:
    return _deserialized_avro_record_dict_to_object(data, data_type, deserializers=deserializers)
