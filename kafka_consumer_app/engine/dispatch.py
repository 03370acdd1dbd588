"""
Message -> signals -> receivers, collecting which receivers failed.

The topic signal is sent first, then the event signal for the message's ``ce_type``.
Receivers are called with ``Signal.send_robust``'s contract (one failing receiver does not
stop the others) but one by one, so that each call is timed for metrics and every failure
is reported back to the consumer, which decides what happens to the message (it is never
committed as if handled).

A value that is a :class:`SignalEvent` (an Open edX event, see :mod:`kafka_consumer_app.engine.openedx`)
brings a signal of its own, sent last, its own way; each of its receivers that failed is
reported like any other, and a retry calls only those again.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, NamedTuple

from asgiref.sync import async_to_sync
from django.dispatch import Signal

from kafka_consumer_app.exceptions import DeserializationError
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


class ReceiverCall(NamedTuple):
    """One receiver called for one message: the receiver, its run time and error (None when it returned)."""

    receiver: Callable[..., Any]
    seconds: float
    error: Exception | None

    @property
    def receiver_name(self) -> str:
        """The receiver's dotted name."""
        return receiver_name(self.receiver)


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

    def malformed(self) -> DeserializationError | None:
        """
        The DeserializationError a receiver raised, if one did: the message cannot be decoded (its key,
        read by the receiver), so it is malformed rather than failed, and no retry will change that.
        """
        for failure in self.failures:
            if isinstance(failure.error, DeserializationError):
                return failure.error
        return None


class SignalEvent:
    """
    A decoded message value that brings a signal of its own, which the dispatcher sends after ours.

    ``send()`` sends it to all its receivers and returns ``(receiver, response)`` pairs as
    ``Signal.send_robust`` does (an exception as the response of a receiver that raised);
    ``call(receiver)`` calls one receiver again with the same arguments, for a retry.
    """

    signal: Signal

    def send(self) -> list[tuple[Callable[..., Any], Any]]:
        """Send the signal; return each receiver with its response or exception."""
        raise NotImplementedError

    def call(self, receiver: Callable[..., Any]) -> Any:
        """Call one receiver of the signal again, as ``send()`` did; raise what it raises."""
        raise NotImplementedError


def live_receivers(signal: Signal, sender: object) -> list[Callable[..., Any]]:
    """
    The receivers ``signal.send(sender)`` would call, in order.

    Django keeps this list behind ``_live_receivers`` (weak references resolved, senders
    matched, results cached). Django 5 returns sync and async receivers apart; async ones
    are run to completion here, one after the other.
    """
    if not signal.receivers:
        return []
    # Django 4.2 returns one list and 5.x a (sync, async) pair; the stubs describe 5.x only.
    receivers: Any = signal._live_receivers(sender)
    if isinstance(receivers, tuple):
        sync_receivers, async_receivers = receivers
        return [*sync_receivers, *(async_to_sync(receiver) for receiver in async_receivers)]
    return list(receivers)


class Dispatcher:
    """Sends one topic's messages to the receivers of ``topic_signal`` and ``event_signal``."""

    def __init__(self, topic: str, sender: object, more_receivers: Callable[[], bool] | None = None) -> None:
        self.topic = topic
        self.sender = sender
        self.topic_signal = topic_signal(topic)
        #: Whether the values' own signals have receivers (Open edX events bring their signals along).
        self.more_receivers = more_receivers

    def has_receivers(self) -> bool:
        """True when a message of this topic would reach at least one receiver."""
        if self.topic_signal.has_listeners(self.sender) or any_event_receivers(self.sender):
            return True
        return self.more_receivers is not None and self.more_receivers()

    def dispatch(self, message: Message) -> DispatchResult:
        """Call every receiver of the message's signals, as ``send_robust`` would, and report each call."""
        result = DispatchResult()
        for receiver in live_receivers(self.topic_signal, self.sender):
            self._call(result, self.topic_signal, receiver, message)
        if message.event_type:
            signal = event_signal(message.event_type)
            for receiver in live_receivers(signal, self.sender):
                self._call(result, signal, receiver, message)
        if isinstance(message.value, SignalEvent):
            self._send_signal_event(result, message.value)
        return result

    def _send_signal_event(self, result: DispatchResult, event: SignalEvent) -> None:
        """
        Send the value's own signal its way and report each receiver that failed.

        The signal is sent in one call, so each receiver's time is the send's time shared out evenly.
        A failed receiver is reported wrapped, so that a retry calls it through ``event.call``.
        """
        started = time.perf_counter()
        responses = event.send()
        share = (time.perf_counter() - started) / max(len(responses), 1)
        for receiver, response in responses:
            error = response if isinstance(response, Exception) else None
            if error is not None:
                result.failures.append(ReceiverFailure(event.signal, _call_again(receiver), error))
            result.calls.append(ReceiverCall(receiver, share, error))

    def redispatch(self, message: Message, failures: Sequence[ReceiverFailure]) -> DispatchResult:
        """Call again only the receivers in ``failures``, as a retry does."""
        result = DispatchResult()
        for failure in failures:
            self._call(result, failure.signal, failure.receiver, message)
        return result

    def _call(self, result: DispatchResult, signal: Signal, receiver: Callable[..., Any], message: Message) -> None:
        started = perf_counter()
        error = None
        try:
            receiver(signal=signal, sender=self.sender, message=message)
        except Exception as raised:  # the send_robust contract: one receiver's error never stops the others
            error = raised
            result.failures.append(ReceiverFailure(signal, receiver, raised))
        result.calls.append(ReceiverCall(receiver, perf_counter() - started, error))


def _call_again(receiver: Callable[..., Any]) -> Callable[..., Any]:
    """
    A receiver of a :class:`SignalEvent` as ``Dispatcher._call`` calls receivers: a retry goes
    through the (freshly decoded) message value's ``call``. It keeps the receiver's name.
    """

    def call_again(signal: Signal, sender: object, message: Message, **kwargs: Any) -> Any:
        if not isinstance(message.value, SignalEvent):
            raise TypeError(f"{message} no longer decodes to the event whose receiver failed")
        return message.value.call(receiver)

    return functools.update_wrapper(call_again, receiver)


def receiver_name(receiver: Callable[..., Any]) -> str:
    """A receiver's dotted name, as logs, metrics and dead-letter headers show it."""
    try:
        return _cached_receiver_name(receiver)
    except TypeError:  # an unhashable callable object
        return _receiver_name(receiver)


def _receiver_name(receiver: Callable[..., Any]) -> str:
    module = getattr(receiver, "__module__", None) or "?"
    name = getattr(receiver, "__qualname__", None) or type(receiver).__qualname__
    return f"{module}.{name}"


# Metrics name every receiver call; the name of a function never changes.
_cached_receiver_name = functools.lru_cache(maxsize=1024)(_receiver_name)
