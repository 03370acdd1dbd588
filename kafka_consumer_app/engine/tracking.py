"""
Offset tracking for concurrency within a partition: the watermark to commit, and the offsets finished above it.

With ``CONCURRENCY`` above 1 the messages of a partition finish out of order. Per partition a
:class:`PartitionOffsets` knows every offset taken in and every offset finished. The offset to commit is
its *watermark*, the lowest offset taken in and not finished; the offsets finished above it travel in
the commit's metadata (:meth:`PartitionOffsets.metadata`), and when the partition is assigned again
:func:`decode_metadata` names them, so that their messages are skipped instead of run a second time.
Standard library only: no Django, no client. See docs/decisions/0008-concurrency-within-a-partition.rst.

The metadata's format and bounds: :mod:`kafka_consumer_app.engine.offset_metadata`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterable

from kafka_consumer_app.engine.offset_metadata import METADATA_BYTES, METADATA_SPAN, decode_metadata, encode_metadata

__all__ = ["METADATA_BYTES", "METADATA_SPAN", "PartitionOffsets", "decode_metadata"]


class PartitionOffsets:
    """
    The offsets of one assigned partition: taken in, finished, and what to commit. Not thread-safe: the caller locks.

    ``take`` and ``finish`` are O(1) amortized. The tracker holds the offsets from the watermark to the highest
    taken in (see :attr:`span`); finished offsets below the watermark are forgotten.

    When the queued messages of a partition are dropped (on revoke) nothing needs telling: their offsets stay
    unfinished, so the watermark stays at or below the lowest of them, which is the offset to commit. Should
    they be fetched again, ``take`` lets them in again.
    """

    __slots__ = ("_highest_finished", "_next", "_prefinished", "_taken", "_unfinished")

    def __init__(self, start: int, finished: Iterable[int] = ()) -> None:
        """
        Track a partition resuming at ``start``, the committed offset (the next offset to consume).

        ``finished`` are offsets at or above ``start`` finished before, as :func:`decode_metadata` names them:
        when one is taken in, :meth:`take` says to skip it, and it counts as finished at once. Offsets below
        ``start`` in it are ignored.
        """
        #: The offsets taken in from the watermark up, increasing; the first one (if any) is unfinished.
        self._taken: deque[int] = deque()
        #: The offsets taken in and not finished.
        self._unfinished: set[int] = set()
        #: The offsets of ``finished`` not reached yet, increasing; all at or above ``_next``.
        self._prefinished: deque[int] = deque(sorted({offset for offset in finished if offset >= start}))
        #: One past the highest offset taken in (``start`` before any): the watermark when nothing is outstanding.
        self._next = start
        #: The highest offset finished, or -1.
        self._highest_finished = -1
        self._pass_finished_run()

    def take(self, offset: int) -> bool:
        """
        A fetched message enters; return False if it is finished already, and must be skipped.

        Offsets come in increasing order, except after a seek backwards. An offset below the watermark is
        finished (or precedes ``start``): False. An offset taken in and not finished yet is let in again (True):
        its queued copy may have been dropped, and skipping it would hold the watermark back for good; a single
        :meth:`finish` still finishes it, so the caller dedupes if it may still hold the first copy.
        """
        if offset < self._next:
            return self._take_again(offset)
        self._next = offset + 1
        if self._prefinished and self._finished_before(offset):
            return False
        self._taken.append(offset)
        self._unfinished.add(offset)
        return True

    def finish(self, offset: int) -> None:
        """
        The message at ``offset`` was handled, parked or skipped.

        Finishing an offset finished already is allowed (a message let in again by :meth:`take` may finish
        twice) and changes nothing; finishing an offset above every offset taken in is a ValueError.
        """
        try:
            self._unfinished.remove(offset)
        except KeyError:
            if offset >= self._next:
                raise ValueError(f"offset {offset} was never taken in (none from {self._next} on was)") from None
            return
        if offset > self._highest_finished:
            self._highest_finished = offset
        if offset == self._taken[0]:
            self._advance()

    @property
    def watermark(self) -> int:
        """
        The offset to commit: the lowest offset taken in and not finished.

        If none is outstanding: one past the highest offset taken in (or past a run of offsets finished before
        that follows it), or ``start`` before any. Never below ``start``; every offset below it is finished.
        """
        taken = self._taken
        return taken[0] if taken else self._next

    @property
    def unfinished(self) -> int:
        """How many offsets are taken in and not finished (for backpressure and metrics)."""
        return len(self._unfinished)

    @property
    def span(self) -> int:
        """
        How many offsets lie from the watermark to the highest taken in, inclusive; 0 when none is outstanding.

        What the tracker holds grows with it, and only the first :data:`METADATA_SPAN` offsets past the
        watermark can go into the metadata: a message stuck below many finished ones makes it grow.
        """
        return self._next - self.watermark

    @property
    def highest_finished(self) -> int | None:
        """The highest offset finished (or skipped as finished before) since the tracker was made; None if none."""
        return self._highest_finished if self._highest_finished >= 0 else None

    def finished_above(self) -> list[int]:
        """The finished offsets above the watermark, sorted, with those finished before and not taken in yet."""
        unfinished = self._unfinished
        above = [offset for offset in self._taken if offset not in unfinished]
        above.extend(self._prefinished)
        return above

    def metadata(self, max_bytes: int = METADATA_BYTES) -> str:
        """
        The commit metadata for :attr:`watermark`: :meth:`finished_above` encoded, ``""`` when there are none.

        At most ``max_bytes`` long, and only offsets less than :data:`METADATA_SPAN` past the watermark: when the
        encoding of all of them is longer, it holds the lowest ones, as many as a binary search finds room for
        (the others run again after a crash). O(span), once per commit.
        """
        return encode_metadata(self.watermark, self.finished_above(), max_bytes)

    def _take_again(self, offset: int) -> bool:
        """``take`` of an offset below one taken in before (after a seek backwards)."""
        if offset < self.watermark:
            return False
        if offset in self._unfinished:
            return True
        taken = self._taken
        index = bisect_left(taken, offset)
        if index < len(taken) and taken[index] == offset:
            return False
        # Never taken in, yet fetched now: Kafka skipped it before (it delivers increasing offsets), so this is
        # rare; O(span). The tracker is not empty here: the watermark is its first offset, below this one.
        taken.insert(index, offset)
        self._unfinished.add(offset)
        return True

    def _finished_before(self, offset: int) -> bool:
        """Whether ``offset``, above every offset taken in so far, was finished before; if so, it is taken in."""
        prefinished = self._prefinished
        while prefinished and prefinished[0] < offset:
            prefinished.popleft()  # never fetched: no longer in the log (compacted away)
        if not prefinished or prefinished[0] != offset:
            return False
        prefinished.popleft()
        self._highest_finished = offset
        if self._taken:
            self._taken.append(offset)  # finished, above the watermark
        else:
            self._pass_finished_run()
        return True

    def _advance(self) -> None:
        """The lowest offset taken in finished: move the watermark past it and the finished offsets after it."""
        taken, unfinished = self._taken, self._unfinished
        taken.popleft()
        while taken and taken[0] not in unfinished:
            taken.popleft()
        if not taken and self._prefinished:
            self._pass_finished_run()

    def _pass_finished_run(self) -> None:
        """With nothing outstanding, move past the offsets finished before that follow at once (if any)."""
        prefinished = self._prefinished
        while prefinished and prefinished[0] == self._next:
            self._highest_finished = prefinished.popleft()
            self._next += 1
