"""
Scheduling messages of a partition across worker threads, in order per key (or per partition, or not at all).

The loop thread :meth:`~Scheduler.put` s each fetched message into its *lane*; worker threads
:meth:`~Scheduler.take` the head of a free lane, run it, and report it :meth:`~Scheduler.done`
or :meth:`~Scheduler.retry_at` a later time. A lane runs one item at a time, in the order it was
put, and a retrying item keeps its lane (only its lane) blocked until its retry is due. Which
lane an item belongs to is the ordering's choice (:data:`ORDERINGS`). Stdlib only: items are
opaque apart from their partition, offset and key.
See docs/decisions/0008-concurrency-within-a-partition.rst.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

#: What a lane is: ``"key"``, one per partition and Kafka key (keyless messages of a partition
#: share one); ``"partition"``, one per partition; ``"none"``, one per item (no order at all).
ORDERINGS = ("key", "partition", "none")

_State = Literal["queued", "running", "waiting", "done", "dropped"]


@dataclass(eq=False, slots=True)
class Work:
    """One fetched message (or a batch) waiting for, or in, a worker; compared by identity."""

    partition: int
    #: The offset of the message, or of a batch's first message.
    offset: int
    #: The Kafka key (raw bytes): what ``"key"`` ordering groups by.
    key: bytes | None
    #: The confluent-kafka message, or a list of them for a batch.
    payload: Any
    #: Attempts made so far; the engine sets it.
    attempts: int = 0
    _state: _State = field(default="queued", init=False, repr=False)
    _lane: _Lane | None = field(default=None, init=False, repr=False)
    #: Set when the item's partition was revoked while it ran.
    _revoked: bool = field(default=False, init=False, repr=False)


class _Lane:
    """Items that run one at a time, in put order; the head is the running or retrying one when busy."""

    __slots__ = ("busy", "items", "name", "partition")

    def __init__(self, name: Hashable, partition: int) -> None:
        self.name = name
        self.partition = partition
        self.items: deque[Work] = deque()
        #: The head is running or waiting for its retry time: nothing of the lane may be taken.
        self.busy = False


def _lane_name(ordering: str) -> Callable[[Work], Hashable]:
    """How an item's lane is named under ``ordering``."""
    if ordering == "key":
        return lambda work: (work.partition, work.key)
    if ordering == "partition":
        return lambda work: work.partition
    if ordering == "none":
        return lambda work: work  # its own lane
    raise ValueError(f"Unknown ordering {ordering!r}; expected one of {', '.join(ORDERINGS)}.")


class Scheduler:
    """
    Thread-safe lanes of work between one loop thread (puts) and worker threads (take, done, retry_at).

    Invariant: a lane is in the runnable queue exactly when it is not busy and holds an item. Each
    call is O(1) amortized but :meth:`revoke` (O(items held)). ``clock`` is what retry times are
    read against; every ``timeout`` is in real seconds.
    """

    def __init__(self, ordering: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._name_of = _lane_name(ordering)
        self.ordering = ordering
        self._clock = clock
        lock = threading.Lock()
        #: Takers wait on this one for a runnable lane (or a retry time, or close).
        self._runnable = threading.Condition(lock)
        #: :meth:`wait_for_running` waits on this one for running items to finish.
        self._drained = threading.Condition(lock)
        self._lanes: dict[Hashable, _Lane] = {}
        self._ready: deque[_Lane] = deque()
        self._retries: list[tuple[float, int, Work]] = []  # a heap of (due, tie-breaker, item)
        self._sequence = itertools.count()
        self._queued: dict[int, int] = {}
        self._running: dict[int, int] = {}
        self._running_total = 0
        self._idle = 0  # takers waiting on _runnable
        self._draining = 0  # callers waiting on _drained
        self._closed = False

    def put(self, work: Work) -> None:
        """Loop thread: enqueue ``work`` at the tail of its lane; it runs when everything before it in the lane has."""
        with self._runnable:
            name = self._name_of(work)
            lane = self._lanes.get(name)
            if lane is None:
                lane = self._lanes[name] = _Lane(name, work.partition)
            work._lane = lane
            work._state = "queued"
            lane.items.append(work)
            self._queued[work.partition] = self._queued.get(work.partition, 0) + 1
            if not lane.busy and len(lane.items) == 1:
                self._make_runnable(lane)

    def take(self, timeout: float | None) -> Work | None:
        """
        Worker: the oldest runnable item, its lane now busy; None after ``timeout`` s or once closed.

        Blocks until a lane is free with an item whose retry time (if any) has come; lanes are
        served in the order they became runnable. ``timeout`` None waits for ever, 0 does not wait.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._runnable:
            while not self._closed:
                self._promote_due()
                if self._ready:
                    return self._start(self._ready.popleft())
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._idle += 1
                try:
                    self._runnable.wait(self._wait_time(remaining))
                finally:
                    self._idle -= 1
            return None

    def done(self, work: Work) -> None:
        """
        Worker: ``work`` is finished (handled, parked or skipped); the next item of its lane may run.

        Harmless for an item :meth:`revoke` dropped. Raises ValueError for an item not running.
        """
        with self._runnable:
            if work._state == "dropped":
                return
            self._stop_running(work)
            self._finish(work, "done")

    def retry_at(self, work: Work, due: float) -> bool:
        """
        Worker: ``work`` failed and runs again at ``due`` (clock time), still the head of its blocked lane.

        Returns False, and drops the item (as :meth:`done` would), if its partition was revoked while
        it ran: its next owner fetches it again. Raises ValueError for an item not running.
        """
        with self._runnable:
            self._stop_running(work)
            if work._revoked:
                self._finish(work, "dropped")
                return False
            work._state = "waiting"
            earliest = not self._retries or due < self._retries[0][0]
            heapq.heappush(self._retries, (due, next(self._sequence), work))
            if earliest and self._idle:
                self._runnable.notify_all()  # takers sleeping past ``due`` wake up to sleep until it
            return True

    def queued(self, partition: int) -> int:
        """Items of ``partition`` put and not finished: queued, running and waiting for a retry."""
        with self._runnable:
            return self._queued.get(partition, 0)

    def revoke(self, partitions: Collection[int]) -> list[Work]:
        """
        Drop every item of ``partitions`` that is not running (queued or waiting for a retry); return them.

        The dropped items come in (partition, offset) order. Running items stay, counted by
        :meth:`queued` and :meth:`running`, until :meth:`done` or :meth:`retry_at` (which drops them).
        """
        revoked = set(partitions)
        dropped: list[Work] = []
        with self._runnable:
            for lane in [lane for lane in self._lanes.values() if lane.partition in revoked]:
                dropped.extend(self._empty(lane))
            self._ready = deque(lane for lane in self._ready if lane.partition not in revoked)
            self._retries = [entry for entry in self._retries if entry[2].partition not in revoked]
            heapq.heapify(self._retries)
        dropped.sort(key=lambda work: (work.partition, work.offset))
        return dropped

    def running(self, partitions: Collection[int] | None = None) -> int:
        """Items running in a worker now, of ``partitions`` or of all partitions."""
        with self._runnable:
            return self._count_running(partitions)

    def wait_for_running(self, partitions: Collection[int] | None, timeout: float) -> bool:
        """Block until no item of ``partitions`` (None: of any) runs, or ``timeout`` s; return whether drained."""
        deadline = time.monotonic() + timeout
        with self._drained:
            while self._count_running(partitions):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._draining += 1
                try:
                    self._drained.wait(remaining)
                finally:
                    self._draining -= 1
            return True

    def close(self) -> None:
        """Wake every :meth:`take` to return None, now and from now on; running items may still finish."""
        with self._runnable:
            self._closed = True
            self._runnable.notify_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called: every :meth:`take` returns None."""
        return self._closed

    def idle(self) -> int:
        """Workers blocked in :meth:`take` now, waiting for something to run (metrics)."""
        with self._runnable:
            return self._idle

    def next_due(self) -> float | None:
        """The earliest retry time an item waits for (clock time), or None."""
        with self._runnable:
            return self._retries[0][0] if self._retries else None

    def snapshot(self) -> dict[int, int]:
        """Per partition holding any, the items put and not finished (as :meth:`queued`)."""
        with self._runnable:
            return dict(self._queued)

    # The helpers below run with the lock held.

    def _make_runnable(self, lane: _Lane) -> None:
        self._ready.append(lane)
        if self._idle:
            self._runnable.notify()

    def _start(self, lane: _Lane) -> Work:
        """Run the head of ``lane``; wake another taker if more is runnable."""
        work = lane.items[0]
        lane.busy = True
        work._state = "running"
        self._running[work.partition] = self._running.get(work.partition, 0) + 1
        self._running_total += 1
        if self._ready and self._idle:
            self._runnable.notify()  # more is runnable (promoted retries, or a wake-up another taker beat us to)
        return work

    def _stop_running(self, work: Work) -> None:
        if work._state != "running":
            raise ValueError(f"{work!r} is {work._state}, not running.")
        self._running[work.partition] -= 1
        if not self._running[work.partition]:
            del self._running[work.partition]
        self._running_total -= 1
        if self._draining:
            self._drained.notify_all()

    def _finish(self, work: Work, state: _State) -> None:
        """``work``, the head of its busy lane, is over: free the lane and uncount it."""
        lane = work._lane
        assert lane is not None and lane.items[0] is work, "only the head of a lane runs"
        lane.items.popleft()
        lane.busy = False
        work._state = state
        self._uncount(work.partition, 1)
        if lane.items:
            self._make_runnable(lane)
        elif self._lanes.get(lane.name) is lane:
            del self._lanes[lane.name]

    def _empty(self, lane: _Lane) -> list[Work]:
        """Drop the items of ``lane`` but a running head (marked revoked); return the dropped ones."""
        head = lane.items[0]
        keep = head._state == "running"
        dropped = list(lane.items)[1:] if keep else list(lane.items)
        for work in dropped:
            work._state = "dropped"
        self._uncount(lane.partition, len(dropped))
        lane.items.clear()
        if keep:
            head._revoked = True
            lane.items.append(head)
        else:
            lane.busy = False
            del self._lanes[lane.name]
        return dropped

    def _uncount(self, partition: int, items: int) -> None:
        left = self._queued.get(partition, 0) - items
        if left > 0:
            self._queued[partition] = left
        else:
            self._queued.pop(partition, None)

    def _promote_due(self) -> None:
        """Make runnable every lane whose head's retry time has come."""
        retries = self._retries
        if not retries:
            return
        now = self._clock()
        while retries and retries[0][0] <= now:
            work = heapq.heappop(retries)[2]
            lane = work._lane
            assert lane is not None
            work._state = "queued"
            lane.busy = False
            self._ready.append(lane)

    def _wait_time(self, remaining: float | None) -> float | None:
        """How long a taker may sleep: ``remaining`` s (None: for ever) or until the next retry time if sooner."""
        if not self._retries:
            return remaining
        until_due = max(0.0, self._retries[0][0] - self._clock())
        return until_due if remaining is None else min(remaining, until_due)

    def _count_running(self, partitions: Collection[int] | None) -> int:
        if partitions is None:
            return self._running_total
        return sum(self._running.get(partition, 0) for partition in partitions)
