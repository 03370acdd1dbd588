"""
Offset tracking for concurrency within a partition: the watermark to commit, and the offsets finished above it.

With ``CONCURRENCY`` above 1 the messages of a partition finish out of order. Per partition a
:class:`PartitionOffsets` knows every offset taken in and every offset finished. The offset to commit is
its *watermark*, the lowest offset taken in and not finished; the offsets finished above it travel in
the commit's metadata (:meth:`PartitionOffsets.metadata`), and when the partition is assigned again
:func:`decode_metadata` names them, so that their messages are skipped instead of run a second time.
Standard library only: no Django, no client. See docs/decisions/0008-concurrency-within-a-partition.rst.

The metadata is ``"<form>:<base>:<data>"``, ASCII, at most ``max_bytes`` (:data:`METADATA_BYTES`) long:

- ``base`` is the watermark it was encoded against, in decimal. It is decoded only against that same
  committed offset: metadata left behind when someone moved the offset names nothing.
- ``data`` is URL-safe base64 (with padding) of a zlib stream. Position ``i`` (from 0) stands for offset
  ``base + 1 + i``; the watermark itself is unfinished by definition.
- ``kca1b``: the stream is a bitmap, position ``i`` finished when bit ``i % 8`` (least significant first)
  of byte ``i // 8`` is set.
- ``kca1r``: the stream is unsigned LEB128 varints, the lengths of alternating runs of positions, unfinished
  first (that one may be 0), finished last; every other run is at least 1 long.

Both forms are built and the shorter is kept. Only positions below :data:`METADATA_SPAN` are encoded (and
decoded); when the encoding is longer than ``max_bytes``, only the lowest finished offsets that fit are
encoded. Finished offsets left out run again after a crash, which at-least-once delivery allows.
"""

from __future__ import annotations

import base64
import zlib
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Sequence

#: At most this many bytes of commit metadata (brokers accept 4,096 by default: offset.metadata.max.bytes).
METADATA_BYTES = 3500
#: Only offsets less than this far above the watermark (past it) go into the metadata, or come out of it: this
#: bounds what decoding builds (a set of that many offsets at most), whatever the metadata says.
METADATA_SPAN = 1 << 18

_BITMAP = "kca1b"
_RUNS = "kca1r"
#: The longest zlib output accepted: a bitmap takes METADATA_SPAN / 8 bytes, runs at most one byte per position.
_MAX_INFLATED = METADATA_SPAN + 8
#: Prefix lengths tried first when the whole encoding does not fit, doubling from here.
_FIRST_TRY = 64


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
                raise ValueError(f"offset {offset} was never taken in (the highest is {self._next - 1})") from None
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
        base = self.watermark
        positions = [offset - base - 1 for offset in self.finished_above()]
        del positions[bisect_left(positions, METADATA_SPAN) :]
        return _encode_within(base, positions, max_bytes)

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


def decode_metadata(watermark: int, metadata: str | None) -> set[int]:
    """
    The finished offsets that ``metadata``, committed with offset ``watermark``, names.

    The empty set for ``""`` or None, for a negative ``watermark``, for metadata that is not ours (another
    client committed) or encoded against another offset, and for corrupt metadata: this never raises.
    """
    if not metadata or watermark < 0:
        return set()
    form, _, rest = metadata.partition(":")
    base, _, data = rest.partition(":")
    decode = _DECODERS.get(form)
    if decode is None or base != str(watermark):
        return set()
    try:
        return decode(watermark + 1, _inflate(base64.b64decode(data, altchars=b"-_", validate=True)))
    except (ValueError, zlib.error):  # binascii.Error is a ValueError
        return set()


def _encode_within(base: int, positions: list[int], max_bytes: int) -> str:
    """The shortest encoding of ``positions``, or of the longest prefix of it a search finds within ``max_bytes``."""
    if not positions:
        return ""
    best = _encode(base, positions)
    if len(best) <= max_bytes:
        return best
    best = ""
    fits, misses = 0, len(positions)  # positions[:fits] fit (0: nothing), positions[:misses] do not
    size = _FIRST_TRY
    while size < misses:  # from the bottom: the cost follows what fits, not how much is finished
        encoded = _encode(base, positions[:size])
        if len(encoded) > max_bytes:
            misses = size
            break
        fits, best, size = size, encoded, size * 2
    while misses - fits > 1:
        middle = (fits + misses) // 2
        encoded = _encode(base, positions[:middle])
        if len(encoded) <= max_bytes:
            fits, best = middle, encoded
        else:
            misses = middle
    return best


def _encode(base: int, positions: Sequence[int]) -> str:
    """The shorter of the two forms of ``positions`` (not empty, increasing, from 0)."""
    bitmap = _text(_BITMAP, base, _bitmap(positions))
    runs = _text(_RUNS, base, _runs(positions))
    return runs if len(runs) < len(bitmap) else bitmap


def _text(form: str, base: int, raw: bytes) -> str:
    data = base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode("ascii")
    return f"{form}:{base}:{data}"


def _bitmap(positions: Sequence[int]) -> bytes:
    bits = bytearray((positions[-1] >> 3) + 1)
    for position in positions:
        bits[position >> 3] |= 1 << (position & 7)
    return bytes(bits)


def _runs(positions: Sequence[int]) -> bytes:
    out = bytearray()
    run_start = previous = positions[0]
    end = 0  # one past the previous run of finished positions
    for position in positions[1:]:
        if position != previous + 1:
            _put_varint(out, run_start - end)
            _put_varint(out, previous + 1 - run_start)
            end, run_start = previous + 1, position
        previous = position
    _put_varint(out, run_start - end)
    _put_varint(out, previous + 1 - run_start)
    return bytes(out)


def _put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)


def _inflate(data: bytes) -> bytes:
    """Decompress ``data``, a whole zlib stream of at most ``_MAX_INFLATED`` bytes, or raise ValueError."""
    inflater = zlib.decompressobj()
    raw = inflater.decompress(data, _MAX_INFLATED)
    if not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise ValueError("not one whole zlib stream of a bounded size")
    return raw


def _bitmap_offsets(first: int, raw: bytes) -> set[int]:
    """The offsets a bitmap names; position 0 is ``first``."""
    if not raw or len(raw) > METADATA_SPAN // 8:
        raise ValueError("bitmap size")
    offsets: set[int] = set()
    for index, byte in enumerate(raw):
        if byte:
            offset = first + index * 8
            offsets.update(offset + bit for bit in range(8) if byte >> bit & 1)
    return offsets


def _run_offsets(first: int, raw: bytes) -> set[int]:
    """The offsets alternating runs name; position 0 is ``first``."""
    lengths = _varints(raw)
    if not lengths or len(lengths) % 2:
        raise ValueError("not pairs of runs")
    offsets: set[int] = set()
    position = 0
    for index in range(0, len(lengths), 2):
        gap, length = lengths[index], lengths[index + 1]
        if length == 0 or (gap == 0 and index):
            raise ValueError("an empty run")
        position += gap
        if position + length > METADATA_SPAN:
            raise ValueError("runs too long")
        offsets.update(range(first + position, first + position + length))
        position += length
    return offsets


def _varints(raw: bytes) -> list[int]:
    values = []
    value = shift = 0
    for byte in raw:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 28:
                raise ValueError("varint too long")
        else:
            values.append(value)
            value = shift = 0
    if shift:
        raise ValueError("truncated varint")
    return values


_DECODERS: dict[str, Callable[[int, bytes], set[int]]] = {_BITMAP: _bitmap_offsets, _RUNS: _run_offsets}
