"""
The per-message DEBUG line: what happened to each message attempt, never what it contained.

:class:`MessageLog` logs one line on the ``kafka_consumer_app.messages`` logger for every
message attempt whose fate is known (``-v 2``, or that logger at DEBUG)::

    Message orders[0]@42 (event com.example.order.placed.v1): handled in 3.1 ms.

The line holds the coordinates, the ``ce_type`` event type, the outcome (handled, retried,
dead_lettered, skipped, failed) and the time from the poll that returned the message to its
outcome. Keys, values and other headers are never logged: they may hold personal data.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING

from kafka_consumer_app.engine.hooks import ConsumerHooks
from kafka_consumer_app.message import coordinates, decode_event_type, headers_of

if TYPE_CHECKING:
    from confluent_kafka import Message as KafkaMessage

    from kafka_consumer_app.engine.hooks import ConsumerView


logger = logging.getLogger("kafka_consumer_app.messages")


class MessageLog(ConsumerHooks):
    """
    Logs one DEBUG line per message attempt: coordinates, event type, outcome and duration.

    The consumer gets this hook only when ``kafka_consumer_app.messages`` logs DEBUG lines as it
    starts (see :meth:`enabled`): otherwise it would cost every message a clock read for nothing.
    """

    @staticmethod
    def enabled() -> bool:
        """Whether the per-message DEBUG lines would be logged now (LOGGING, or ``-v 3``)."""
        return logger.isEnabledFor(logging.DEBUG)

    def __init__(self) -> None:
        self._polled_at = time.monotonic()

    def after_poll(self, consumer: ConsumerView) -> None:
        """A message handled next starts now."""
        self._polled_at = time.monotonic()

    # The next message of a batch starts when this one ends (after_poll comes between messages only every
    # 0.1 s), so after_message marks the start of the next attempt itself.

    def after_message(self, consumer: ConsumerView, raw: KafkaMessage, outcome: str) -> None:
        """Log the attempt's coordinates, event type, outcome and duration."""
        now = time.monotonic()
        event_type = decode_event_type(headers_of(raw))
        logger.debug(
            "Message %s (%s): %s in %.1f ms.",
            coordinates(raw.topic(), raw.partition(), raw.offset()),
            f"event {event_type}" if event_type else "no event type",
            outcome,
            (now - self._polled_at) * 1000,
        )
        self._polled_at = time.monotonic()


class RepeatFilter(logging.Filter):
    """
    Lets each kind of line through once per ``window`` seconds, and says how many it held back.

    librdkafka repeats itself while a broker is down: a FAIL line per reconnect attempt, up
    to ten a second. Lines that differ only in their numbers (ports, milliseconds, counts)
    are one kind. The next line of a kind after its window ends carries the count of those
    held back, so nothing is hidden without a trace.
    """

    def __init__(self, window: float = 30.0) -> None:
        super().__init__()
        self.window = window
        self._kinds: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False for a repeat within the window; annotate the first line after it."""
        kind = _DIGITS.sub("#", record.getMessage())
        now = time.monotonic()
        shown_at, held = self._kinds.get(kind, (None, 0))
        if shown_at is not None and now - shown_at < self.window:
            self._kinds[kind] = (shown_at, held + 1)
            return False
        if len(self._kinds) > 1000:  # a bound on memory, should lines vary in more than numbers
            self._kinds.clear()
        self._kinds[kind] = (now, 0)
        if held:
            record.msg = f"{record.getMessage()} ({held} similar line(s) held back in the last {self.window:g}s)"
            record.args = None
        return True


_DIGITS = re.compile(r"\d+")


def quiet_repeats(name: str = "kafka_consumer_app.librdkafka", window: float = 30.0) -> None:
    """Install a :class:`RepeatFilter` on logger ``name`` (once)."""
    target = logging.getLogger(name)
    if not any(isinstance(existing, RepeatFilter) for existing in target.filters):
        target.addFilter(RepeatFilter(window))
