"""
The commit metadata of a partition tracked by :mod:`kafka_consumer_app.engine.tracking`: its finished offsets.

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
encoded. Finished offsets left out run again after a crash, which at-least-once delivery allows. Standard
library only.
"""

from __future__ import annotations

import base64
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence

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


def encode_metadata(watermark: int, finished: list[int], max_bytes: int = METADATA_BYTES) -> str:
    """
    The metadata naming ``finished`` (sorted, all above ``watermark``) to commit with offset ``watermark``.

    ``""`` when there are none. At most ``max_bytes`` long, and only offsets less than :data:`METADATA_SPAN`
    past the watermark: when the encoding of all of them is longer, it names the lowest ones, as many as a
    search finds room for. O(span).
    """
    positions = [offset - watermark - 1 for offset in finished]
    del positions[bisect_left(positions, METADATA_SPAN) :]
    return _encode_within(watermark, positions, max_bytes)


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
    """The shorter encoding of ``positions``, or of the longest prefix of it a search finds within ``max_bytes``."""
    if not positions:
        return ""
    encoding = _Encoding(base, positions)
    forms = (encoding.bitmap, encoding.runs)
    whole = [form(len(positions)) for form in forms]
    shorter = min(range(2), key=lambda index: len(whole[index]))
    if len(whole[shorter]) <= max_bytes:
        return whole[shorter]
    return _search(forms[shorter], len(positions), max_bytes)


def _search(encode: Callable[[int], str], count: int, max_bytes: int) -> str:
    """``encode(n)`` of the largest ``n`` below ``count`` a search finds within ``max_bytes``; "" for none."""
    best = ""
    fits, misses = 0, count  # encode(fits) fits (0: nothing), encode(misses) does not
    size = _FIRST_TRY
    while size < misses:  # from the bottom up: the search costs what fits rather than what is finished
        encoded = encode(size)
        if len(encoded) > max_bytes:
            misses = size
            break
        fits, best, size = size, encoded, size * 2
    while misses - fits > 1:
        middle = (fits + misses) // 2
        encoded = encode(middle)
        if len(encoded) <= max_bytes:
            fits, best = middle, encoded
        else:
            misses = middle
    return best


class _Encoding:
    """
    Both forms of a commit's positions, built whole once, so that each prefix tried costs a slice and zlib.

    The bitmap is entropy-coded only (zlib's Z_HUFFMAN_ONLY: fast, and as small as it gets for scattered
    finishes); the runs get zlib's default, whose repeated-string matching suits long runs and regular patterns.
    """

    def __init__(self, base: int, positions: Sequence[int]) -> None:
        """``positions``: not empty, increasing, from 0."""
        self._base = base
        self._positions = positions
        bits = bytearray((positions[-1] >> 3) + 1)
        for position in positions:
            bits[position >> 3] |= 1 << (position & 7)
        self._bitmap = bytes(bits)
        #: Per run of finished positions: its first position, the unfinished ones before it, where its varints start.
        self._run_starts: list[int] = []
        self._run_gaps: list[int] = []
        self._run_at: list[int] = []
        self._runs = bytearray()
        self._add_runs(positions)

    def bitmap(self, count: int) -> str:
        """The bitmap form of the first ``count`` positions (at least 1)."""
        last = self._positions[count - 1]
        bitmap = bytearray(self._bitmap[: (last >> 3) + 1])
        bitmap[-1] &= (2 << (last & 7)) - 1
        compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_HUFFMAN_ONLY)
        return _text(_BITMAP, self._base, compressor.compress(bitmap) + compressor.flush())

    def runs(self, count: int) -> str:
        """The runs form of the first ``count`` positions (at least 1)."""
        last = self._positions[count - 1]
        run = bisect_right(self._run_starts, last) - 1
        runs = self._runs[: self._run_at[run]]
        _put_varint(runs, self._run_gaps[run])
        _put_varint(runs, last + 1 - self._run_starts[run])
        return _text(_RUNS, self._base, zlib.compress(runs))

    def _add_runs(self, positions: Sequence[int]) -> None:
        end = 0  # one past the previous run
        run_start = previous = positions[0]
        for position in positions[1:]:
            if position != previous + 1:
                self._add_run(run_start - end, run_start, previous + 1 - run_start)
                end, run_start = previous + 1, position
            previous = position
        self._add_run(run_start - end, run_start, previous + 1 - run_start)

    def _add_run(self, gap: int, start: int, length: int) -> None:
        self._run_starts.append(start)
        self._run_gaps.append(gap)
        self._run_at.append(len(self._runs))
        _put_varint(self._runs, gap)
        _put_varint(self._runs, length)


def _text(form: str, base: int, compressed: bytes) -> str:
    data = base64.urlsafe_b64encode(compressed).decode("ascii")
    return f"{form}:{base}:{data}"


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
