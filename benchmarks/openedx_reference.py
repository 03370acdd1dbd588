"""
The Open edX benchmark's hand-written loop: confluent-kafka, the same Avro decoding, openedx-events' send.

What a careful hand-written at-least-once consumer of Open edX events does, and no more, so that
``consume_events``' ratio to it is the app's own overhead:

- the client options of :mod:`benchmarks.reference` (those ``consume_events`` sets);
- per message: ``poll()``; the signal of the one ``ce_type`` header; the value decoded by
  confluent-kafka's ``AvroDeserializer`` with the writer's schema resolved to the signal's,
  built once per signal exactly as edx-event-bus-kafka builds it (the key is not decoded:
  edx-event-bus-kafka's consumer does not decode it either); ``EventsMetadata`` from the
  headers in one pass; ``signal.send_event_with_custom_metadata(metadata, **data)``, which calls
  the benchmark's receiver; a receiver's exception stops the loop; then ``store_offsets()``;
- a synchronous commit and ``close()`` at the end, outside the timed window.

Run as ``python -m benchmarks.openedx_reference --bootstrap H:P --topic T --group-id G
--max-messages N`` with ``BENCH_SCHEMA_REGISTRY_URL``, ``BENCH_WITHOUT_APP=1``,
``BENCH_RECEIVER=openedx`` and the recorder's variables in the environment.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any
from uuid import UUID

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import Message as KafkaMessage

from benchmarks.reference import client_config, parse_args

#: Header -> (EventsMetadata field, conversion from the header's text).
METADATA: dict[str, tuple[str, Any]] = {
    "ce_id": ("id", UUID),
    "ce_type": ("event_type", str),
    "ce_source": ("source", str),
    "ce_time": ("time", datetime.fromisoformat),
    "ce_minorversion": ("minorversion", int),
    "sourcehost": ("sourcehost", str),
    "sourcelib": ("sourcelib", lambda text: tuple(int(part) for part in text.split("."))),
}


class Handler:
    """Decode and send one message; deserializers are made once per signal."""

    def __init__(self, registry_url: str) -> None:
        # Imported once Django is set up (openedx-events reads settings), and bound here, not per message.
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.serialization import MessageField, SerializationContext
        from openedx_events.data import EventsMetadata
        from openedx_events.tooling import OpenEdxPublicSignal

        self.client = SchemaRegistryClient({"url": registry_url})
        self.deserializers: dict[str, Any] = {}
        self.value_field = MessageField.VALUE
        self.context_class = SerializationContext
        self.metadata_class = EventsMetadata
        self.signal_by_type = OpenEdxPublicSignal.get_signal_by_type

    def deserializer(self, signal: Any) -> Any:
        """The value deserializer of ``signal``, as edx-event-bus-kafka's ``get_deserializer`` builds it."""
        found = self.deserializers.get(signal.event_type)
        if found is None:
            from confluent_kafka.schema_registry.avro import AvroDeserializer
            from openedx_events.event_bus.avro.deserializer import AvroSignalDeserializer

            signal_avro = AvroSignalDeserializer(signal)
            found = AvroDeserializer(
                schema_str=signal_avro.schema_string(),
                schema_registry_client=self.client,
                from_dict=lambda record, ctx=None: signal_avro.from_dict(record),
            )
            self.deserializers[signal.event_type] = found
        return found

    def __call__(self, raw: KafkaMessage) -> None:
        """Decode ``raw`` and send its signal; raise when it is no event or a receiver failed."""
        headers = raw.headers() or []
        fields: dict[str, Any] = {}
        for key, value in headers:
            if key in METADATA and value is not None:
                if METADATA[key][0] in fields:
                    raise ValueError(f"header {key!r} is repeated")
                name, convert = METADATA[key]
                fields[name] = convert(value.decode("utf-8"))
        signal = self.signal_by_type(fields["event_type"])
        context = self.context_class(raw.topic(), self.value_field, headers)
        data = self.deserializer(signal)(raw.value(), context)
        for _receiver, response in signal.send_event_with_custom_metadata(self.metadata_class(**fields), **data):
            if isinstance(response, Exception):
                raise response


def consume(consumer: Consumer, max_messages: int, handle: Handler, poll_timeout: float) -> int:
    """Poll, handle and store offsets until ``max_messages`` were handled; return the count."""
    handled = 0
    while handled < max_messages:
        raw = consumer.poll(poll_timeout)
        if raw is None:
            continue
        error = raw.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            continue
        handle(raw)
        consumer.store_offsets(message=raw)
        handled += 1
    return handled


def main(argv: list[str] | None = None) -> int:
    """Consume ``--max-messages`` events of ``--topic``, commit, close."""
    args = parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()  # connects the benchmark's receiver, as in the other two processes
    from openedx_events.tooling import load_all_signals

    load_all_signals()
    handle = Handler(os.environ["BENCH_SCHEMA_REGISTRY_URL"])
    consumer = Consumer(client_config(args.bootstrap, args.group_id))
    try:
        consumer.subscribe([args.topic])
        consume(consumer, args.max_messages, handle, args.poll_timeout)
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
