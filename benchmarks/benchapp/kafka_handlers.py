"""
Receivers of the benchmarks, connected according to environment variables set by the orchestrator.

``BENCH_TOPIC`` names the topic (the ``--topic`` given to ``consume_events``) and
``BENCH_RECEIVER`` picks one receiver:

- ``noop``: records the message and returns (the app's own overhead);
- ``orm``: writes one row through the Django ORM, then records the message;
- ``orm-batch``: a ``batch_signal`` receiver that writes a batch's rows with one ``bulk_create``,
  then records the batch's messages;
- ``sleep``: sleeps ``BENCH_SLEEP_MS`` milliseconds (an I/O-bound handler), then records;
- ``latency``: computes ``time.time_ns()`` minus the producer's ``bench-sent-ns`` header, and
  minus the message's timestamp (the broker's append time, on a ``LogAppendTime`` topic);
- ``openedx``: nothing here: the Open edX benchmark's receiver is connected to its
  ``OpenEdxPublicSignal`` by the app's ``ready()`` (:mod:`benchmarks.benchapp.openedx_receiver`),
  in every process of that benchmark.

Every receiver ends with the same :class:`~benchmarks.recorder.Recorder` call as the reference
loop; the recorder is configured by the ``BENCH_*`` variables it documents. Without
``BENCH_TOPIC`` nothing is connected (as during ``migrate``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.benchapp.models import HandledEvent
from benchmarks.benchapp.recording import recorder
from benchmarks.payloads import SENT_NS_HEADER
from kafka_consumer_app.message import Message
from kafka_consumer_app.signals import batch_signal, topic_signal

SLEEP_SECONDS = float(os.environ.get("BENCH_SLEEP_MS") or 0) / 1000


def on_noop(sender: Any, message: Message, **kwargs: Any) -> None:
    """Do nothing but record the message."""
    recorder.record()


def on_orm(sender: Any, message: Message, **kwargs: Any) -> None:
    """Insert one row (one autocommitted INSERT), then record the message."""
    HandledEvent.objects.create(
        partition=message.partition,
        offset=message.offset,
        event_id=message.value["id"],
        kind=message.value["kind"],
    )
    recorder.record()


def on_orm_batch(sender: Any, messages: Sequence[Message], **kwargs: Any) -> None:
    """Insert a batch's rows with one bulk_create (one autocommitted INSERT), then record its messages."""
    HandledEvent.objects.bulk_create(
        HandledEvent(
            partition=message.partition,
            offset=message.offset,
            event_id=message.value["id"],
            kind=message.value["kind"],
        )
        for message in messages
    )
    recorder.record_many(len(messages))


def on_sleep(sender: Any, message: Message, **kwargs: Any) -> None:
    """Stand for an I/O-bound handler: sleep, then record the message."""
    time.sleep(SLEEP_SECONDS)
    recorder.record()


def on_latency(sender: Any, message: Message, **kwargs: Any) -> None:
    """Record how long ago the producer sent the message, and the broker appended it; warm-ups are not measured."""
    now_ns = time.time_ns()
    sent = message.header(SENT_NS_HEADER)
    if sent is None or message.timestamp is None:
        recorder.record_warmup()
        return
    appended_ns = round(message.timestamp.timestamp() * 1000) * 1_000_000
    recorder.record_latency(now_ns - int(sent), now_ns - appended_ns)


RECEIVERS: dict[str, Callable[..., None]] = {
    "noop": on_noop,
    "orm": on_orm,
    "sleep": on_sleep,
    "latency": on_latency,
}

#: The receivers connected to ``batch_signal`` rather than ``topic_signal``.
BATCH_RECEIVERS: dict[str, Callable[..., None]] = {"orm-batch": on_orm_batch}


def connect_receiver() -> None:
    """Connect the receiver named by ``BENCH_RECEIVER`` to the topic named by ``BENCH_TOPIC``."""
    topic = os.environ.get("BENCH_TOPIC")
    if not topic:
        return
    name = os.environ.get("BENCH_RECEIVER", "noop")
    if name in BATCH_RECEIVERS:
        batch_signal(topic).connect(BATCH_RECEIVERS[name], dispatch_uid="benchmarks.receiver")
        return
    if name == "openedx":
        return
    if name not in RECEIVERS:
        raise ValueError(f"BENCH_RECEIVER must be one of {', '.join([*RECEIVERS, *BATCH_RECEIVERS])}, not {name!r}")
    topic_signal(topic).connect(RECEIVERS[name], dispatch_uid="benchmarks.receiver")


connect_receiver()
