"""
The Open edX benchmark's receiver: a no-op receiver of one ``OpenEdxPublicSignal``, the same in every process.

It is connected by the benchmark app's ``ready()`` when ``BENCH_RECEIVER=openedx``, to the
signal of ``BENCH_OPENEDX_EVENT_TYPE``, in the hand-written loop, in ``consume_events`` and in
edx-event-bus-kafka's consumer alike: all three deliver to it through openedx-events'
``send_event_with_custom_metadata``.
"""

from __future__ import annotations

import os
from typing import Any

from benchmarks.benchapp.recording import recorder

#: The event type the benchmark produces; receivers connect to its signal.
EVENT_TYPE = "org.openedx.learning.auth.session.login.completed.v1"


def on_openedx_event(**kwargs: Any) -> None:
    """Do nothing but record the event."""
    recorder.record()


def connect() -> None:
    """Connect :func:`on_openedx_event` to the signal of ``BENCH_OPENEDX_EVENT_TYPE``."""
    from openedx_events.tooling import OpenEdxPublicSignal, load_all_signals

    load_all_signals()
    signal = OpenEdxPublicSignal.get_signal_by_type(os.environ.get("BENCH_OPENEDX_EVENT_TYPE") or EVENT_TYPE)
    signal.connect(on_openedx_event, dispatch_uid="benchmarks.openedx_receiver")
