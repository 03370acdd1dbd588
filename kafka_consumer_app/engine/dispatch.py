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
import inspect
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any, NamedTuple

from asgiref.sync import async_to_sync
from django.dispatch import Signal

from kafka_consumer_app.exceptions import DeserializationError
from kafka_consumer_app.message import Message
from kafka_consumer_app.signals import any_event_receivers, existing_event_signal, receivers_generation, topic_signal


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


class DispatchResult:
    """
    What happened when one message was dispatched: how many receivers ran, which failed, and (when
    the dispatcher times its calls) every call with its run time.
    """

    __slots__ = ("called", "calls", "failures")

    def __init__(self) -> None:
        self.called = 0
        #: Every receiver call, when the dispatcher is ``timed``; empty otherwise.
        self.calls: list[ReceiverCall] = []
        self.failures: list[ReceiverFailure] = []

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


class Dispatcher:
    """
    Sends one topic's messages to the receivers of ``topic_signal`` and ``event_signal``.

    The receivers are looked up once, and again only after :func:`receivers_generation` changed
    (a receiver connected, disconnected or collected), not for every message. They are held as
    weak references, as Django holds them, so a receiver connected weakly can still be collected.
    ``timed`` records every call with its run time (for the ``after_receiver`` hooks).
    """

    def __init__(
        self, topic: str, sender: object, more_receivers: Callable[[], bool] | None = None, timed: bool = True
    ) -> None:
        self.topic = topic
        self.sender = sender
        self.topic_signal = topic_signal(topic)
        #: Whether the values' own signals have receivers (Open edX events bring their signals along).
        self.more_receivers = more_receivers
        self.timed = timed
        self._generation = -1
        self._topic_receivers: list[Callable[[], Any]] = []
        self._events = False
        self._event_receivers: dict[str, list[Callable[[], Any]]] = {}

    def has_receivers(self) -> bool:
        """True when a message of this topic would reach at least one receiver."""
        if self.topic_signal.has_listeners(self.sender) or any_event_receivers(self.sender):
            return True
        return self.more_receivers is not None and self.more_receivers()

    def dispatch(self, message: Message) -> DispatchResult:
        """Call every receiver of the message's signals, as ``send_robust`` would, and report each call."""
        if self._generation != receivers_generation():
            self._look_up()
        result = DispatchResult()
        self._call_all(result, self.topic_signal, self._topic_receivers, message)
        if self._events:
            event_type = message.event_type
            if event_type:
                signal = existing_event_signal(event_type)
                if signal is not None:
                    self._call_all(result, signal, self._receivers_of_event(event_type, signal), message)
        if isinstance(message.value, SignalEvent):
            self._send_signal_event(result, message.value)
        return result

    def _look_up(self) -> None:
        """Forget the receivers looked up before; look up the topic signal's, and whether events have any."""
        self._generation = receivers_generation()  # first: a change while looking up is seen next time
        self._topic_receivers = _held(self.topic_signal, self.sender)
        self._events = any_event_receivers(self.sender)
        self._event_receivers = {}

    def _receivers_of_event(self, event_type: str, signal: Signal) -> list[Callable[[], Any]]:
        receivers = self._event_receivers.get(event_type)
        if receivers is None:
            receivers = self._event_receivers[event_type] = _held(signal, self.sender)
        return receivers

    def _call_all(
        self, result: DispatchResult, signal: Signal, held: list[Callable[[], Any]], message: Message
    ) -> None:
        for reference in held:
            receiver = reference()
            if receiver is not None:  # collected since the look-up
                self._call(result, signal, receiver, message)

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
        result.called += 1
        if not self.timed:
            try:
                receiver(signal=signal, sender=self.sender, message=message)
            except Exception as raised:  # the send_robust contract: one receiver's error never stops the others
                result.failures.append(ReceiverFailure(signal, receiver, raised))
            return
        started = perf_counter()
        error = None
        try:
            receiver(signal=signal, sender=self.sender, message=message)
        except Exception as raised:  # as above
            error = raised
            result.failures.append(ReceiverFailure(signal, receiver, raised))
        result.calls.append(ReceiverCall(receiver, perf_counter() - started, error))


def _held(signal: Signal, sender: object) -> list[Callable[[], Any]]:
    """
    The receivers ``signal.send(sender)`` would call, in order, each behind a weak reference when it
    can have one, so that caching them keeps none alive; calling a reference gives the receiver, or
    None once it was collected.

    Django keeps the list behind ``_live_receivers`` (weak references resolved, senders matched,
    results cached) and returns sync and async receivers apart; async ones come last, each run to
    completion by ``async_to_sync``.
    """
    if not signal.receivers:
        return []
    # Django 4.2 returns one list and 5.x a (sync, async) pair; the stubs describe 5.x only.
    receivers: Any = signal._live_receivers(sender)
    sync_receivers, async_receivers = receivers if isinstance(receivers, tuple) else (receivers, [])
    return [*map(_weak, sync_receivers), *map(_weak_async, async_receivers)]


def _weak(receiver: Callable[..., Any]) -> Callable[[], Any]:
    try:
        return weakref.WeakMethod(receiver) if inspect.ismethod(receiver) else weakref.ref(receiver)
    except TypeError:  # no weak reference to this kind of callable: Django holds it strongly too
        return functools.partial(_same, receiver)


def _weak_async(receiver: Callable[..., Any]) -> Callable[[], Any]:
    reference = _weak(receiver)

    def wrapped() -> Any:
        found = reference()
        return None if found is None else async_to_sync(found)

    return wrapped


def _same(receiver: Callable[..., Any]) -> Callable[..., Any]:
    return receiver


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
