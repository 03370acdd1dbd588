"""
Open edX interoperability: consume what Open edX services publish, deliver it to ``OpenEdxPublicSignal`` receivers.

Open edX producers (openedx-events with edx-event-bus-kafka) write Avro values in the Confluent
wire format, with CloudEvents headers (``ce_type``, ``ce_id``, ``ce_source``, ``ce_time``,
``ce_minorversion``, ``sourcehost``, ``sourcelib``). For a topic with
``TOPICS[topic]["OPENEDX_EVENTS"] = True`` (needs ``pip install kafka_consumer_app[openedx]``):

- the value is decoded as edx-event-bus-kafka's consumer decodes it: the signal is looked up by
  the ``ce_type`` header (``OpenEdxPublicSignal.get_signal_by_type``), the bytes are read with
  the writer's schema from the registry resolved to that signal's schema
  (``AvroSignalDeserializer``), and the event metadata is rebuilt from the headers;
- receivers of ``topic_signal``/``event_signal`` get an :class:`OpenEdxEvent` as ``message.value``;
- then the signal is sent as the Open edX consumer sends it,
  ``signal.send_event_with_custom_metadata(metadata, **data)``: receivers get ``metadata``,
  the event data and ``from_event_bus=True`` (so openedx-events does not produce the event
  back to the bus). That call uses ``send_robust`` and returns the receivers' exceptions
  rather than raising; each one is mapped to a failed receiver, so retries, the dead-letter
  topic and at-least-once commits apply to Open edX receivers as to any other. A retry calls
  only the receivers that failed, with the same arguments. (With ``settings.DEBUG``
  openedx-events uses ``send``, which raises at the first failing receiver: then the whole
  send is what failed, and a retry sends the signal again.)

Messages this cannot decode are malformed and go to the topic's failure policy at once
(``dlt.reason: malformed``; the next messages go on): no ``ce_type`` header or several, bytes
that are not Avro in the wire format, a schema id the registry does not know, data that does
not fit the signal, and **a ``ce_type`` that is no OpenEdxPublicSignal known here**. The last
one is the deliberate policy for unknown event types: it almost always means that the
producer runs a newer openedx-events than this service, so parking the message in the
dead-letter topic keeps it, visible, until openedx-events is upgraded and
``replay_dead_letters`` hands it back; skipping it (what edx-event-bus-kafka does: log and
commit) would lose it silently. The topic's ``FAILURE_POLICY`` still decides: ``skip`` turns
this into log-and-commit, ``stop`` into a halt.

:mod:`kafka_consumer_app.openedx` holds the reverse plug, :class:`~kafka_consumer_app.openedx.EventBusConsumer`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from asgiref.sync import async_to_sync
from confluent_kafka.schema_registry import SchemaRegistryClient
from openedx_events.data import EventsMetadata
from openedx_events.event_bus.avro.deserializer import AvroSignalDeserializer
from openedx_events.exceptions import SenderValidationError
from openedx_events.tooling import SIGNAL_PROCESSED_FROM_EVENT_BUS, OpenEdxPublicSignal, load_all_signals

from kafka_consumer_app.engine import avro
from kafka_consumer_app.engine.avro_decoder import CachedAvroDeserializer
from kafka_consumer_app.engine.dispatch import SignalEvent
from kafka_consumer_app.engine.openedx_data import event_data_converter
from kafka_consumer_app.engine.openedx_send import send_from_event_bus
from kafka_consumer_app.exceptions import DeserializationError
from kafka_consumer_app.message import EVENT_TYPE_HEADER, Headers
from kafka_consumer_app.serialization import ContextDeserializer, DeserializationContext

logger = logging.getLogger(__name__)


class UnknownEventTypeError(ValueError):
    """The ``ce_type`` header names no OpenEdxPublicSignal that this service's openedx-events knows."""


class InvalidEventError(ValueError):
    """The message's headers or data do not make an event of its signal."""


def _sourcelib(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


#: CloudEvents (and Open edX) headers -> (EventsMetadata field, conversion), as edx-event-bus-kafka maps them.
METADATA_HEADERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "ce_type": ("event_type", str),
    "ce_id": ("id", UUID),
    "ce_source": ("source", str),
    "ce_time": ("time", datetime.fromisoformat),
    "ce_minorversion": ("minorversion", int),
    "sourcehost": ("sourcehost", str),
    "sourcelib": ("sourcelib", _sourcelib),
}


class EventHeaders:
    """
    The CloudEvents headers of one message, read in one pass: each header's text, decoded as UTF-8 once.

    A header given twice is remembered as such, and is an error only where it is used (the
    ``ce_type`` when the signal is looked up, the others when the metadata is built), so that
    the first fault a message has is the one reported, whatever else is wrong with it.
    """

    __slots__ = ("repeated", "texts")

    def __init__(self, headers: Headers) -> None:
        texts: dict[str, str] = {}
        repeated: list[str] = []
        for key, value in headers:
            if key in METADATA_HEADERS and value is not None:
                if key in texts:
                    repeated.append(key)
                texts[key] = value.decode("utf-8")
        self.texts = texts
        self.repeated = repeated

    def event_type(self) -> str:
        """The one ``ce_type`` header; raise InvalidEventError when it is missing or repeated."""
        event_type = self.texts.get(EVENT_TYPE_HEADER)
        if event_type is None or EVENT_TYPE_HEADER in self.repeated:
            count = 0 if event_type is None else 1 + self.repeated.count(EVENT_TYPE_HEADER)
            raise InvalidEventError(f"an Open edX event needs exactly one ce_type header, not {count}")
        return event_type

    def metadata(self) -> EventsMetadata:
        """
        The producer's EventsMetadata, as edx-event-bus-kafka rebuilds it from the headers.

        ``ce_id`` is required; a missing optional header takes EventsMetadata's default (with a
        warning); a header given twice is an error.
        """
        texts = self.texts
        fields: dict[str, Any] = {}
        for header, (field_name, convert) in METADATA_HEADERS.items():
            text = texts.get(header)
            if text is None:
                if header == "ce_id":
                    raise InvalidEventError("the message has no ce_id header")
                logger.warning("Missing %r header on an Open edX event; EventsMetadata's default is used.", header)
                continue
            if header in self.repeated:
                raise InvalidEventError(f"the message has {1 + self.repeated.count(header)} {header!r} headers")
            fields[field_name] = convert(text)
        return EventsMetadata(**fields)


def metadata_from_headers(headers: Headers) -> EventsMetadata:
    """Rebuild the producer's EventsMetadata from the message's headers (see :meth:`EventHeaders.metadata`)."""
    return EventHeaders(headers).metadata()


def event_type_of(headers: Headers) -> str:
    """The one ``ce_type`` header; raise InvalidEventError when it is missing or repeated."""
    return EventHeaders(headers).event_type()


@lru_cache(maxsize=1)
def load_signals() -> None:
    """Import every openedx-events signals module once, so that every event type is known."""
    load_all_signals()


def signal_for(event_type: str) -> OpenEdxPublicSignal:
    """The OpenEdxPublicSignal of ``event_type``; raise UnknownEventTypeError when there is none."""
    load_signals()
    try:
        return OpenEdxPublicSignal.get_signal_by_type(event_type)
    except KeyError:
        raise UnknownEventTypeError(
            f"ce_type {event_type!r} is no OpenEdxPublicSignal known to this service's openedx-events; "
            "upgrade openedx-events, then replay the dead-letter topic"
        ) from None


def any_openedx_receivers() -> bool:
    """True when some OpenEdxPublicSignal has a receiver (openedx-events sends them with ``sender=None``)."""
    load_signals()
    return any(signal.has_listeners(None) for signal in OpenEdxPublicSignal.all_events())


@lru_cache(maxsize=256)
def signal_deserializer(signal: OpenEdxPublicSignal, client: SchemaRegistryClient) -> CachedAvroDeserializer:
    """
    The value deserializer of ``signal``, built as edx-event-bus-kafka's ``get_deserializer`` builds it.

    The writer's schema (by the id in the message) is resolved to the signal's own schema, and
    the record becomes the signal's event data (attrs objects, keyed as ``send_event`` takes them).
    It is confluent-kafka's ``AvroDeserializer`` with its work cached per writer schema id
    (:mod:`kafka_consumer_app.engine.avro_decoder`): the same records, the same errors. The
    record becomes event data as ``signal_avro.from_dict`` makes it, planned once per signal
    (:mod:`kafka_consumer_app.engine.openedx_data`).
    """
    signal_avro = AvroSignalDeserializer(signal)
    return CachedAvroDeserializer(
        client, signal_avro.schema_string(), event_data_converter(signal, signal_avro.deserializers)
    )


def check_event_data(signal: OpenEdxPublicSignal, data: dict[str, Any]) -> None:
    """
    Refuse data that ``send_event_with_custom_metadata`` would refuse (its sender validation).

    Checked while decoding, so that such a message is malformed before any receiver runs.
    """
    if set(data) != set(signal.init_data):
        raise InvalidEventError(
            f"the data of {signal.event_type} has fields {sorted(data)}, the signal takes {sorted(signal.init_data)}"
        )
    for key, kind in signal.init_data.items():
        if not data[key] or not isinstance(data[key], kind):
            raise InvalidEventError(f"field {key!r} of {signal.event_type} is not a {kind.__name__}")


class _WholeSend:
    """
    Stands for every receiver of a signal whose send raised instead of returning the errors.

    openedx-events sends with ``send`` (not ``send_robust``) under ``settings.DEBUG`` or after
    ``allow_send_event_failure()``: the first failing receiver's exception ends the send, and
    which receivers ran is unknown. A retry sends the whole signal again.
    """

    __module__ = "openedx_events.tooling"

    def __init__(self, signal: OpenEdxPublicSignal) -> None:
        self.signal = signal
        self.__qualname__ = f"OpenEdxPublicSignal[{signal.event_type}].send_event_with_custom_metadata"

    def __call__(self, **kwargs: Any) -> Any:
        """Not a receiver to call: a retry goes through :meth:`OpenEdxEvent.call`, which sends again."""
        raise TypeError(f"{self.__qualname__} stands for a whole send; retry it with OpenEdxEvent.call")


@dataclass(frozen=True)
class OpenEdxEvent(SignalEvent):
    """
    An Open edX event, decoded: what ``message.value`` is for a topic with ``OPENEDX_EVENTS``.

    ``data`` holds the signal's keyword arguments (e.g. ``{"user": UserData(...)}``);
    ``metadata`` is the producer's EventsMetadata, rebuilt from the headers.
    """

    signal: OpenEdxPublicSignal
    data: dict[str, Any]
    metadata: EventsMetadata

    @property
    def event_type(self) -> str:
        """The event type, e.g. ``org.openedx.learning.auth.session.login.completed.v1``."""
        event_type: str = self.signal.event_type
        return event_type

    def send(self) -> list[tuple[Callable[..., Any], Any]]:
        """
        Send the signal exactly as edx-event-bus-kafka's consumer does; return each receiver's response.

        That is ``send_event_with_custom_metadata(metadata, **data)``'s result, without formatting
        its INFO line when that would be dropped (:mod:`kafka_consumer_app.engine.openedx_send`).
        """
        try:
            return send_from_event_bus(self.signal, self.metadata, self.data)
        except SenderValidationError as error:
            raise DeserializationError(f"the event does not fit {self.signal.event_type}: {error}") from error
        except Exception as error:  # openedx-events used send() (DEBUG): a receiver's error ended the send
            return [(_WholeSend(self.signal), error)]

    def call(self, receiver: Callable[..., Any]) -> Any:
        """Call one receiver again with the arguments openedx-events gave it (a retry)."""
        if isinstance(receiver, _WholeSend):
            for _receiver, response in self.send():
                if isinstance(response, Exception):
                    raise response
            return None
        response = receiver(
            signal=self.signal,
            sender=None,
            metadata=self.metadata,
            **{SIGNAL_PROCESSED_FROM_EVENT_BUS: True},
            **self.data,
        )
        if inspect.isawaitable(response):  # an async receiver, which Django's send would have run to completion
            response = async_to_sync(_wait_for)(response)
        return response


async def _wait_for(awaitable: Any) -> Any:
    return await awaitable


class OpenEdxEventDeserializer(ContextDeserializer):
    """The value deserializer of a topic with ``OPENEDX_EVENTS``: bytes and headers -> OpenEdxEvent."""

    def __call__(self, data: bytes, context: DeserializationContext) -> OpenEdxEvent:
        """Decode one message value; raise (malformed) when it is no event of a known signal."""
        headers = EventHeaders(context.headers)
        signal = signal_for(headers.event_type())
        event_data = avro.decode(signal_deserializer(signal, avro.schema_registry_client()), data, context)
        check_event_data(signal, event_data)
        return OpenEdxEvent(signal, event_data, headers.metadata())


#: The value deserializer that ``OPENEDX_EVENTS`` selects (``settings.topics.OPENEDX_DESERIALIZER`` names it).
decode_event = OpenEdxEventDeserializer()
