"""
Batches -> ``batch_signal`` receivers: one attempt at a batch, and what its failures say.

:class:`BatchDispatcher` calls the receivers of ``batch_signal(topic)`` with ``messages=``, one by one
(``send_robust``'s contract, each call timed), and reports every receiver that raised, as
:class:`~kafka_consumer_app.engine.dispatch.Dispatcher` does for one message. :class:`BatchDelivery`
converts the batch's messages and dispatches them between the hooks, under the watchdog.
:func:`split_at` reads a :class:`~kafka_consumer_app.exceptions.BatchFailed` out of the failures.
What happens next (finish, retry, park) is :mod:`kafka_consumer_app.engine.batches`' business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from time import perf_counter
from typing import Any

from confluent_kafka import Message as KafkaMessage
from django.dispatch import Signal

from kafka_consumer_app.engine.dispatch import DispatchResult, ReceiverCall, ReceiverFailure, _held
from kafka_consumer_app.engine.hooks import HookEmitter
from kafka_consumer_app.engine.records import MessageConverter, locate
from kafka_consumer_app.engine.watchdog import WatchSlot
from kafka_consumer_app.exceptions import BatchFailed, ConfigurationError, DeserializationError
from kafka_consumer_app.message import Message
from kafka_consumer_app.signals import batch_signal, receivers_generation


class BatchDispatcher:
    """Sends one topic's batches to the receivers of ``batch_signal(topic)``; looks them up when they change."""

    def __init__(self, topic: str, sender: object, timed: bool = True) -> None:
        self.topic = topic
        self.sender = sender
        self.signal = batch_signal(topic)
        self.timed = timed
        self._generation = -1
        self._receivers: list[Callable[[], Any]] = []

    def has_receivers(self) -> bool:
        """True when the topic's batches would reach at least one receiver."""
        return self.signal.has_listeners(self.sender)

    def dispatch(self, messages: Sequence[Message], failures: Sequence[ReceiverFailure] | None) -> DispatchResult:
        """Call every batch receiver (only those of ``failures``, on a retry) with ``messages``."""
        result = DispatchResult()
        batch = tuple(messages)
        if failures is not None:
            for failure in failures:
                self._call(result, failure.signal, failure.receiver, batch)
            return result
        if self._generation != receivers_generation():
            self._generation = receivers_generation()  # first: a change while looking up is seen next time
            self._receivers = _held(self.signal, self.sender)
        for reference in self._receivers:
            receiver = reference()
            if receiver is not None:  # collected since the look-up
                self._call(result, self.signal, receiver, batch)
        return result

    def _call(
        self, result: DispatchResult, signal: Signal, receiver: Callable[..., Any], batch: tuple[Message, ...]
    ) -> None:
        result.called += 1
        started = perf_counter()
        error = None
        try:
            receiver(signal=signal, sender=self.sender, messages=batch)
        except Exception as raised:  # the send_robust contract: one receiver's error never stops the others
            error = raised
            result.failures.append(ReceiverFailure(signal, receiver, raised))
        if self.timed:
            result.calls.append(ReceiverCall(receiver, perf_counter() - started, error))


class BatchDelivery:
    """Converts a batch's messages and dispatches them, between the ``before_message`` and ``after_receiver`` hooks."""

    def __init__(self, converter: MessageConverter, dispatcher: BatchDispatcher, emitter: HookEmitter) -> None:
        self.converter = converter
        self.dispatcher = dispatcher
        self.emitter = emitter

    def convert(
        self, raws: Sequence[KafkaMessage]
    ) -> tuple[list[tuple[KafkaMessage, Message]], list[tuple[KafkaMessage, DeserializationError]]]:
        """Each message converted, in order; and apart, those whose value (or key) cannot be decoded."""
        converted, malformed = [], []
        for raw in raws:
            try:
                converted.append((raw, self.converter.to_message(raw, locate(raw))))
            except DeserializationError as error:
                malformed.append((raw, error))
        return converted, malformed

    def attempt(
        self, messages: Sequence[Message], failures: Sequence[ReceiverFailure] | None, slot: WatchSlot, watched: Any
    ) -> DispatchResult:
        """Call the batch receivers (only those of ``failures``, on a retry), ``watched`` naming it for the watchdog."""
        emitter = self.emitter
        if "before_message" in emitter.wanted:
            for message in messages:
                emitter.emit("before_message", message)
        slot.begin(watched)
        try:
            context = emitter.dispatching_batch(messages) if "dispatching_batch" in emitter.wanted else nullcontext()
            with context:
                result = self.dispatcher.dispatch(messages, failures)
        finally:
            slot.end()
        if "after_receiver" in emitter.wanted:
            for call in result.calls:
                emitter.emit("after_receiver", call.receiver_name, call.seconds, call.error)
        return result


def split_at(failures: Sequence[ReceiverFailure], size: int) -> int | None:
    """
    The index to split a batch of ``size`` at: the lowest that a :class:`BatchFailed` names, when every
    failure is one with an index in range; None when the whole batch failed (any other exception).
    """
    indexes = [
        failure.error.index
        for failure in failures
        if isinstance(failure.error, BatchFailed) and isinstance(failure.error.index, int)
    ]
    if not failures or len(indexes) != len(failures) or not all(0 <= index < size for index in indexes):
        return None
    return min(indexes)


def blamed(failures: Sequence[ReceiverFailure]) -> list[ReceiverFailure]:
    """The failures of one message: a :class:`BatchFailed` stands for its cause (what logs and dead letters show)."""
    return [
        ReceiverFailure(failure.signal, failure.receiver, _cause(failure.error))
        if isinstance(failure.error, BatchFailed)
        else failure
        for failure in failures
    ]


def _cause(error: BatchFailed) -> Exception:
    return error.cause if isinstance(error.cause, Exception) else error


def require_receivers(topic: str, per_message: bool, batches: bool, allow_none: bool) -> None:
    """
    Refuse to start a topic without receivers (unless ``allow_none``), or with receivers of both kinds:
    per-message ones (``topic_signal``, ``event_signal``, Open edX signals) and ``batch_signal`` ones.
    """
    if per_message and batches:
        raise ConfigurationError(
            f"topic {topic!r} has batch_signal({topic!r}) receivers and per-message receivers (topic_signal, "
            "event_signal or Open edX signals) at once, and a topic is consumed one way or the other; connect "
            "its receivers to batch_signal only, or to the per-message signals only"
        )
    if per_message or batches or allow_none:
        return
    raise ConfigurationError(
        f"no receiver is connected for topic {topic!r}, so its messages would be committed unhandled; connect "
        f"one to topic_signal({topic!r}) or batch_signal({topic!r}) in <app>/kafka_handlers.py, or pass "
        "--allow-no-handlers"
    )


def receivers_kind(per_message: bool, batches: bool) -> str:
    """What the startup line says the topic's receivers are."""
    if batches:
        return "batch signal"
    return "topic and event signals" if per_message else "none, --allow-no-handlers"
