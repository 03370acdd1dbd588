"""
OS-signal handling, the only place kafka_consumer_app touches SIGTERM and SIGINT.

The first signal asks the consumer to stop: it finishes the message in hand, commits
synchronously, closes the client (leaving the group at once) and exits 0. A second
signal exits immediately with 128 + the signal number; nothing more is committed, so the
message in hand is redelivered (at-least-once).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType, TracebackType

logger = logging.getLogger(__name__)

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """A flag the consume loop checks between messages; set by a signal or by code."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        """Ask the loop to stop after the current message."""
        if not self._event.is_set():
            self.reason = reason
        self._event.set()

    def is_set(self) -> bool:
        """True once a stop was requested."""
        return self._event.is_set()


class GracefulShutdown:
    """
    Context manager that turns SIGTERM/SIGINT into a ``StopRequest``, and restores the old handlers.

    Outside the main thread (where Python cannot install signal handlers) it does nothing.
    """

    def __init__(self, stop: StopRequest) -> None:
        self.stop = stop
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulShutdown:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            logger.warning(
                "Received %s again: exiting now without committing; the message in hand will be redelivered.", name
            )
            logging.shutdown()
            os._exit(128 + signum)
        logger.info(
            "Received %s: finishing the current message, committing offsets and leaving the group; "
            "send it again to exit at once.",
            name,
        )
        self.stop.set(name)
