"""
Message -> signals -> receivers, collecting which receivers failed.

The topic signal is sent first, then the event signal for the message's ``ce_type``.
Receivers are called through ``Signal.send_robust`` so that one failing receiver does not
stop the others, and every failure is reported back to the consumer, which decides what
happens to the message (it is never committed as if handled).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.dispatch import Signal

from kafka_consumer_app.message import Message
from kafka_consumer_app.signals import any_event_receivers, event_signal, topic_signal

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceiverFailure:
    """One receiver that raised while handling a message."""

    signal: Signal
    receiver: Callable[..., Any]
    error: Exception

    @property
    def receiver_name(self) -> str:
        """The receiver's dotted name, as it appears in logs and dead-letter headers."""
        module = getattr(self.receiver, "__module__", None) or "?"
        name = getattr(self.receiver, "__qualname__", None) or repr(self.receiver)
        return f"{module}.{name}"


@dataclass
class DispatchResult:
    """What happened when one message was dispatched: how many receivers ran, which failed."""

    called: int = 0
    failures: list[ReceiverFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every receiver returned without raising."""
        return not self.failures


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
        """Send ``message`` to every receiver and report the ones that raised."""
        result = DispatchResult()
        for signal in self.signals_for(message):
            for receiver, response in signal.send_robust(self.sender, message=message):
                result.called += 1
                if isinstance(response, Exception):
                    result.failures.append(ReceiverFailure(signal, receiver, response))
        return result

    def redispatch(self, message: Message, failures: Sequence[ReceiverFailure]) -> DispatchResult:
        """Call again only the receivers in ``failures``, as a retry does."""
        result = DispatchResult()
        for failure in failures:
            result.called += 1
            try:
                failure.receiver(signal=failure.signal, sender=self.sender, message=message)
            except Exception as error:  # the same contract as send_robust: report, don't raise
                result.failures.append(ReceiverFailure(failure.signal, failure.receiver, error))
        return result
