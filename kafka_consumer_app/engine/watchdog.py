"""
The stall watchdog: a thread that watches the receiver running in the consume loop.

A receiver still running after the soft limit is logged once, with the loop thread's
stack, so operators see where it hangs. After the hard limit the process commits the
offsets already stored (never the message in hand) and exits with code 5: the message is
redelivered, and the group rebalances now rather than when ``max.poll.interval.ms``
silently evicts this member.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kafka_consumer_app.exceptions import EXIT_STALLED
from kafka_consumer_app.message import coordinates

logger = logging.getLogger(__name__)


class WatchSlot:
    """What one thread runs receivers for, and since when: one tuple, so the watching thread reads both at once."""

    __slots__ = ("current", "thread_id", "thread_name", "warned")

    def __init__(self) -> None:
        self.current: tuple[Any, float] | None = None
        self.thread_id = threading.get_ident()
        self.thread_name = threading.current_thread().name
        self.warned: tuple[Any, float] | None = None

    def begin(self, what: Any) -> None:
        """Start watching the receivers of ``what``: a confluent-kafka message, or a description."""
        # Once per message: one clock read and one write; the watching thread does the rest.
        self.current = (what, time.monotonic())

    def end(self) -> None:
        """The receivers returned."""
        self.current = None


class Watchdog:
    """
    Checks twice a second how long each watched thread's current message has been in its receivers.

    The thread that calls :meth:`start` is watched through :meth:`begin` and :meth:`end`; each
    worker thread (CONCURRENCY above 1) takes a :meth:`slot` of its own.
    """

    def __init__(
        self,
        soft_timeout: float | None,
        hard_timeout: float,
        on_stall: Callable[[], None] = lambda: None,
        interval: float = 0.5,
    ) -> None:
        self.soft_timeout = soft_timeout
        self.hard_timeout = hard_timeout
        self.on_stall = on_stall
        self.interval = interval
        self._main = WatchSlot()
        self._slots = [self._main]
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        #: Whether log lines name the thread (there are worker threads).
        self._name_threads = False

    def start(self) -> None:
        """Start the watching thread (a daemon: it never keeps the process alive); the caller's thread is watched."""
        self._main.thread_id = threading.get_ident()
        self._main.thread_name = threading.current_thread().name
        self._thread = threading.Thread(target=self._run, name="kafka-consumer-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the watching thread."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(self.interval * 4)

    def begin(self, what: Any) -> None:
        """Start watching the receivers of ``what`` on the thread that started the watchdog."""
        self._main.current = (what, time.monotonic())

    def end(self) -> None:
        """The receivers returned."""
        self._main.current = None

    def slot(self) -> WatchSlot:
        """A slot for the calling thread (a worker), watched from now on, as the starting thread is."""
        slot = WatchSlot()
        with self._lock:
            self._slots = [*self._slots, slot]
            self._name_threads = True
        return slot

    @contextmanager
    def watching(self, what: Any) -> Iterator[None]:
        """Watch the block that runs the receivers of ``what`` (``begin``/``end`` as a context manager)."""
        self.begin(what)
        try:
            yield
        finally:
            self.end()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            for slot in self._slots:
                current = slot.current
                if current is not None:
                    self._check(slot, current)

    def _check(self, slot: WatchSlot, current: tuple[Any, float]) -> None:
        what = _describe(current[0])
        if self._name_threads:
            what = f"{what} (thread {slot.thread_name})"
        elapsed = time.monotonic() - current[1]
        if elapsed >= self.hard_timeout:
            logger.error(
                "Receivers of %s still running after %.0fs (hard limit %gs): committing what was handled and "
                "exiting with code %d; the message will be redelivered.\n%s",
                what,
                elapsed,
                self.hard_timeout,
                EXIT_STALLED,
                _stack(slot.thread_id),
            )
            self.on_stall()
            logging.shutdown()
            os._exit(EXIT_STALLED)
        if self.soft_timeout is not None and elapsed >= self.soft_timeout and slot.warned is not current:
            slot.warned = current
            logger.warning(
                "Receivers of %s still running after %.0fs (soft limit %gs); the process exits at %gs. Stack:\n%s",
                what,
                elapsed,
                self.soft_timeout,
                self.hard_timeout,
                _stack(slot.thread_id),
            )


def _describe(what: Any) -> str:
    """``topic[partition]@offset`` of a message, formatted only when the watchdog has to speak."""
    if isinstance(what, str):
        return what
    return coordinates(what.topic(), what.partition(), what.offset())


def _stack(thread_id: int) -> str:
    frame = sys._current_frames().get(thread_id)
    return "".join(traceback.format_stack(frame)) if frame is not None else "(stack unavailable)"
