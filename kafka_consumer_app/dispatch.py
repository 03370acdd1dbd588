"""
Message -> signals -> receivers, collecting which receivers failed.

The topic signal is sent first, then the event signal for the message's ``ce_type``.
Receivers are called with ``Signal.send_robust``'s contract (one failing receiver does not
stop the others) but one by one, so that each call is timed for metrics and every failure
is reported back to the consumer, which decides what happens to the message (it is never
committed as if handled).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from django.dispatch import Signal

from kafka_consumer_app.message import Message
from kafka_consumer_app.signals import any_event_receivers, event_signal, topic_signal


@dataclass(frozen=True)
class ReceiverFailure:
    """One receiver that raised while handling a message."""

    signal: Signal
    receiver: Callable[..., Any]
    error: Exception

    @property
    def receiver_name(self) -> str:
        """The receiver's dotted name, as it appears in logs and dead-letter headers."""
        return receiver_name(self.receiver)


@dataclass(frozen=True)
class ReceiverCall:
    """One receiver called for one message: its name, run time and error (None when it returned)."""

    receiver_name: str
    seconds: float
    error: Exception | None


@dataclass
class DispatchResult:
    """What happened when one message was dispatched: every receiver called, and which failed."""

    calls: list[ReceiverCall] = field(default_factory=list)
    failures: list[ReceiverFailure] = field(default_factory=list)

    @property
    def called(self) -> int:
        """How many receivers ran."""
        return len(self.calls)

    @property
    def ok(self) -> bool:
        """True when every receiver returned without raising."""
        return not self.failures


def live_receivers(signal: Signal, sender: object) -> list[Callable[..., Any]]:
    """
    The receivers ``signal.send(sender)`` would call, in order.

    Django keeps this list behind ``_live_receivers`` (weak references resolved, senders
    matched, results cached). Django 5 returns sync and async receivers apart; async ones
    are run to completion here, one after the other.
    """
    receivers = signal._live_receivers(sender)
    if isinstance(receivers, tuple):
        sync_receivers, async_receivers = receivers
        return [*sync_receivers, *(async_to_sync(receiver) for receiver in async_receivers)]
    return list(receivers)


class Dispatcher:
    """Sends one topic's messages to the receivers of ``topic_signal`` and ``event_signal``."""

    def __init__(self, topic: str, sender: object) -> None:
        self.topic = topic
        self.sender = sender
        self.topic_signal = topic_signal(topic)

    def has_receivers(self) -> bool:
        """True when a message of this topic would reach at least one receiver."""
        return self.topic_signal.has_listeners(self.sender) or any_event_receivers(self.sender)

    def signals_for(self, message: Message) -> list[Signal]:
        """The signals a message is sent on, in order."""
        signals = [self.topic_signal]
        if message.event_type:
            signals.append(event_signal(message.event_type))
        return signals

    def dispatch(self, message: Message) -> DispatchResult:
        """Call every receiver of the message's signals, as ``send_robust`` would, and report each call."""
        result = DispatchResult()
        for signal in self.signals_for(message):
            if signal.receivers:
                for receiver in live_receivers(signal, self.sender):
                    self._call(result, signal, receiver, message)
        return result

    def redispatch(self, message: Message, failures: Sequence[ReceiverFailure]) -> DispatchResult:
        """Call again only the receivers in ``failures``, as a retry does."""
        result = DispatchResult()
        for failure in failures:
            self._call(result, failure.signal, failure.receiver, message)
        return result

    def _call(self, result: DispatchResult, signal: Signal, receiver: Callable[..., Any], message: Message) -> None:
        started = time.perf_counter()
        error = None
        try:
            receiver(signal=signal, sender=self.sender, message=message)
        except Exception as raised:  # the send_robust contract: one receiver's error never stops the others
            error = raised
            result.failures.append(ReceiverFailure(signal, receiver, raised))
        result.calls.append(ReceiverCall(receiver_name(receiver), time.perf_counter() - started, error))


def receiver_name(receiver: Callable[..., Any]) -> str:
    """A receiver's dotted name, as logs, metrics and dead-letter headers show it."""
    module = getattr(receiver, "__module__", None) or "?"
    name = getattr(receiver, "__qualname__", None) or type(receiver).__qualname__
    return f"{module}.{name}"
