"""
One attempt at one message: convert it, run the hooks around it, dispatch it under the watchdog.

Both engines use it: the sequential loop (CONCURRENCY 1) on its own thread, and each worker
thread (CONCURRENCY above 1) with a watchdog slot of its own. What happens after the attempt
(store, retry, park) is the caller's business.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from confluent_kafka import Message as KafkaMessage

from kafka_consumer_app.engine.dispatch import Dispatcher, DispatchResult, ReceiverFailure
from kafka_consumer_app.engine.hooks import HookEmitter
from kafka_consumer_app.engine.positions import DatabasePositions
from kafka_consumer_app.engine.records import Location, MessageConverter
from kafka_consumer_app.engine.watchdog import Watchdog, WatchSlot
from kafka_consumer_app.message import Message


class Delivery:
    """Converts a message and dispatches it, between the ``before_message`` and ``after_receiver`` hooks."""

    def __init__(self, converter: MessageConverter, dispatcher: Dispatcher, emitter: HookEmitter) -> None:
        self.converter = converter
        self.dispatcher = dispatcher
        self.emitter = emitter
        #: OFFSET_STORE "database": each attempt runs in a transaction that also moves the partition's position.
        self.positions: DatabasePositions | None = None

    def attempt(
        self,
        raw: KafkaMessage,
        location: Location,
        failures: Sequence[ReceiverFailure] | None,
        watch: Watchdog | WatchSlot,
    ) -> DispatchResult:
        """
        Convert ``raw`` and call its receivers (only those of ``failures``, on a retry); raises
        DeserializationError for a value that cannot be decoded.

        With the database store, in the transaction of :meth:`DatabasePositions.attempt_message`, which
        rolls back every receiver's writes on a failure: a retry then calls every receiver again.
        """
        if self.positions is not None:
            return self.positions.attempt_message(
                location, functools.partial(self._attempt, raw, location, None, watch)
            )
        return self._attempt(raw, location, failures, watch)

    def _attempt(
        self,
        raw: KafkaMessage,
        location: Location,
        failures: Sequence[ReceiverFailure] | None,
        watch: Watchdog | WatchSlot,
    ) -> DispatchResult:
        message = self.converter.to_message(raw, location)
        emitter = self.emitter
        if "before_message" in emitter.wanted:
            emitter.emit("before_message", message)
        result = self._watched_dispatch(raw, message, failures, watch)
        if "after_receiver" in emitter.wanted:
            for call in result.calls:
                emitter.emit("after_receiver", call.receiver_name, call.seconds, call.error)
        return result

    def _watched_dispatch(
        self,
        raw: KafkaMessage,
        message: Message,
        failures: Sequence[ReceiverFailure] | None,
        watch: Watchdog | WatchSlot,
    ) -> DispatchResult:
        """Dispatch under the stall watchdog and inside every hook's ``dispatching`` context."""
        # begin()/end() rather than context managers: this runs once per message, and two context
        # managers cost about as much as dispatching to a no-op receiver (measured with make bench).
        watch.begin(raw)
        try:
            if "dispatching" not in self.emitter.wanted:
                return self._dispatch(message, failures)
            with self.emitter.dispatching(message):
                return self._dispatch(message, failures)
        finally:
            watch.end()

    def _dispatch(self, message: Message, failures: Sequence[ReceiverFailure] | None) -> DispatchResult:
        if failures is None:
            return self.dispatcher.dispatch(message)
        return self.dispatcher.redispatch(message, failures)
