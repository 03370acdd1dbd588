"""
Room in a full partition: the loop thread waits briefly for the workers before it pauses (ADR 8).

Pausing a partition makes librdkafka drop the messages it fetched ahead for it, and fetch them again after
the resume. Receivers fast enough to keep up with the fetches, but behind the loop thread (which takes
in messages far faster than any receiver runs), would pause and resume their partitions over and over:
a batch receiver ran at a quarter of its speed that way. So a partition that reaches ``MAX_QUEUED``
makes the loop wait up to :data:`ROOM_WAIT` for the workers to bring it down to three quarters; only
if they do not is it paused. Slow receivers do not, and their partitions pause as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: How long the loop waits for the workers to make room in a full partition before it pauses the partition.
ROOM_WAIT = 0.05


class Room:
    """The loop thread's wait for room in one partition, and the workers' word that there is some."""

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        #: (partition, unfinished messages) the loop waits for; read without the lock by the workers.
        self._wanted: tuple[int, int] | None = None

    def wait(self, partition: int, low: int, backlog: Callable[[], int]) -> bool:
        """Loop thread: wait up to ROOM_WAIT for ``backlog()`` to be ``low`` or less; whether it is."""
        deadline = time.monotonic() + ROOM_WAIT
        with self._condition:
            self._wanted = (partition, low)
            while (left := backlog()) > low and (remaining := deadline - time.monotonic()) > 0:
                self._condition.wait(remaining)
            self._wanted = None
        return left <= low

    def finished(self, partition: int, unfinished: int) -> None:
        """A worker finished messages of ``partition``: wake the loop if it waits for this one and room is made."""
        wanted = self._wanted
        if wanted is not None and wanted[0] == partition and unfinished <= wanted[1]:
            with self._condition:
                self._condition.notify()
