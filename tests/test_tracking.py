"""PartitionOffsets and its commit metadata: the watermark, finished offsets across a restart, the size bounds."""

from __future__ import annotations

import ast
import base64
import random
import sys
import tracemalloc
import zlib

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kafka_consumer_app.engine import offset_metadata, tracking
from kafka_consumer_app.engine.tracking import METADATA_BYTES, METADATA_SPAN, PartitionOffsets, decode_metadata


def tracker_with(taken: range | list[int], finished: list[int], start: int | None = None) -> PartitionOffsets:
    """A tracker that took ``taken`` in (all True) and finished ``finished``, in that order."""
    offsets = PartitionOffsets(taken[0] if start is None else start)
    assert all(offsets.take(offset) for offset in taken)
    for offset in finished:
        offsets.finish(offset)
    return offsets


def expected_watermark(start: int, taken: set[int], finished: set[int]) -> int:
    """The watermark by its definition, the slow way."""
    if taken - finished:
        return min(taken - finished)
    return max(taken) + 1 if taken else start


def test_a_new_tracker_commits_its_start():
    offsets = PartitionOffsets(42)
    assert (offsets.watermark, offsets.unfinished, offsets.span, offsets.highest_finished) == (42, 0, 0, None)
    assert offsets.finished_above() == []
    assert offsets.metadata() == ""


def test_the_watermark_is_the_lowest_offset_taken_and_not_finished():
    offsets = tracker_with(range(10, 15), [12, 14])
    assert (offsets.watermark, offsets.unfinished, offsets.span) == (10, 3, 5)
    assert offsets.finished_above() == [12, 14]
    assert offsets.highest_finished == 14
    offsets.finish(10)
    assert (offsets.watermark, offsets.finished_above()) == (11, [12, 14])
    offsets.finish(11)
    assert (offsets.watermark, offsets.finished_above()) == (13, [14])
    offsets.finish(13)
    assert (offsets.watermark, offsets.unfinished, offsets.span, offsets.finished_above()) == (15, 0, 0, [])


def test_offsets_missing_from_the_log_hold_nothing_back():
    offsets = tracker_with([5, 7, 9], [5])  # 6 and 8: compacted away, or transaction markers
    assert offsets.watermark == 7
    offsets.finish(9)
    assert (offsets.watermark, offsets.finished_above()) == (7, [9])
    offsets.finish(7)
    assert offsets.watermark == 10


def test_the_watermark_never_goes_below_start():
    offsets = PartitionOffsets(100)
    assert offsets.take(103)  # 100 to 102 are gone from the log
    assert offsets.watermark == 103
    assert not offsets.take(99)  # below the committed offset: finished before
    assert offsets.watermark == 103


def test_after_a_seek_backwards_finished_offsets_are_skipped_and_unfinished_ones_let_in_once():
    offsets = tracker_with([0, 1, 2, 3, 5], [0, 2])
    assert not offsets.take(0)  # below the watermark
    assert not offsets.take(2)  # finished above the watermark
    assert offsets.take(1)  # taken and not finished: let in again, counted once
    assert offsets.take(3)
    assert offsets.unfinished == 3
    assert offsets.take(4)  # skipped before (Kafka did not deliver it), fetched now: tracked in order
    assert offsets.unfinished == 4
    for offset in (1, 3, 5):
        offsets.finish(offset)
    assert offsets.watermark == 4
    offsets.finish(4)
    assert (offsets.watermark, offsets.unfinished) == (6, 0)


def test_finishing_twice_changes_nothing_and_finishing_what_was_never_taken_is_refused():
    offsets = tracker_with(range(3), [1])
    offsets.finish(1)
    assert (offsets.watermark, offsets.unfinished, offsets.finished_above()) == (0, 2, [1])
    with pytest.raises(ValueError, match="never taken in"):
        offsets.finish(3)
    offsets.finish(0)
    offsets.finish(0)
    assert offsets.watermark == 2


def restarted(offsets: PartitionOffsets) -> PartitionOffsets:
    """The tracker of the partition's next owner, from what ``offsets`` would commit."""
    watermark = offsets.watermark
    return PartitionOffsets(watermark, decode_metadata(watermark, offsets.metadata()))


def test_after_a_restart_the_messages_finished_above_the_watermark_are_skipped():
    before = tracker_with(range(1000, 1100), [1003, 1004, 1010, *range(1050, 1100, 3)])
    after = restarted(before)
    skipped = [offset for offset in range(1000, 1100) if not after.take(offset)]
    assert skipped == before.finished_above()
    assert after.unfinished == 100 - len(skipped)


def test_offsets_finished_before_count_before_they_are_fetched_again():
    before = tracker_with(range(100), list(range(1, 100)))  # all but the first
    after = restarted(before)
    assert (after.watermark, after.finished_above()) == (0, list(range(1, 100)))
    assert restarted(after).finished_above() == list(range(1, 100))  # committed before fetching: kept
    assert after.take(0)
    after.finish(0)
    assert (after.watermark, after.span, after.highest_finished) == (100, 0, 99)
    assert not any(after.take(offset) for offset in range(100))
    assert after.take(100)


def test_offsets_finished_before_and_gone_from_the_log_are_forgotten():
    offsets = PartitionOffsets(0, {2, 3, 7})
    assert offsets.take(0)
    assert offsets.take(5)  # 1 to 4 are gone; so are the records of 2 and 3
    assert offsets.finished_above() == [7]
    assert not offsets.take(7)
    offsets.finish(0)
    offsets.finish(5)
    assert offsets.watermark == 8


def test_with_nothing_outstanding_the_watermark_passes_offsets_finished_before():
    offsets = PartitionOffsets(0, {0, 1, 4, 5, 6, 9})
    assert offsets.watermark == 2  # 0 and 1 finished before
    assert offsets.take(2)
    offsets.finish(2)
    assert offsets.watermark == 3
    assert not offsets.take(4)  # 3 is gone from the log
    assert (offsets.watermark, offsets.finished_above(), offsets.highest_finished) == (7, [9], 6)
    assert not any(offsets.take(offset) for offset in (5, 6))


def test_finished_offsets_below_the_start_are_ignored():
    offsets = PartitionOffsets(10, {3, 11})
    assert offsets.take(10)
    assert not offsets.take(11)
    assert offsets.finished_above() == [11]


@pytest.mark.parametrize("max_bytes", [40, 200, 1000, METADATA_BYTES])
@pytest.mark.parametrize("share", [0.02, 0.5, 0.98])
def test_metadata_too_long_for_every_finished_offset_names_the_lowest_ones_that_fit(max_bytes, share):
    chance = random.Random(f"{max_bytes} {share}")
    finished = [offset for offset in range(1, 200_000) if chance.random() < share]
    offsets = tracker_with(range(200_000), finished)  # 0 is stuck
    metadata = offsets.metadata(max_bytes)
    decoded = decode_metadata(0, metadata)
    assert len(metadata) <= max_bytes
    assert metadata.isascii()
    assert 0 < len(decoded) < len(finished)
    assert decoded == set(finished[: len(decoded)])


def test_only_offsets_within_the_span_go_into_the_metadata():
    finished = list(range(1, METADATA_SPAN + 1000))
    offsets = tracker_with(range(METADATA_SPAN + 1000), finished)
    metadata = offsets.metadata()
    assert len(metadata) < 100  # one run, or a bitmap of 0xff bytes: either is tiny
    assert decode_metadata(0, metadata) == set(range(1, METADATA_SPAN + 1))


def test_too_little_room_for_any_offset_is_no_metadata():
    assert tracker_with(range(3), [2]).metadata(max_bytes=10) == ""


@pytest.mark.parametrize(
    ("finished", "form"),
    [
        ([1, 4, 5, 9, 12, 13, 14, 20, 26, 27, 31], "kca1b:"),  # scattered
        (list(range(10, 5000)), "kca1r:"),  # one long run
    ],
)
def test_the_shorter_form_is_kept(finished, form):
    offsets = tracker_with(range(5000), finished)
    metadata = offsets.metadata()
    assert metadata.startswith(form)
    assert decode_metadata(0, metadata) == set(finished)


def encoded(form: str, base: int, raw: bytes) -> str:
    """Metadata of ``form`` holding ``raw``, however wrong."""
    return f"{form}:{base}:{base64.urlsafe_b64encode(zlib.compress(raw)).decode()}"


GOOD = tracker_with(range(100, 120), [103, 110]).metadata()


@pytest.mark.parametrize(
    ("watermark", "metadata"),
    [
        (100, ""),
        (100, None),
        (-1001, GOOD),  # no committed offset
        (101, GOOD),  # committed with another offset
        (100, "committed by another client"),
        (100, "kca1b:100"),
        (100, "kca9b" + GOOD[5:]),  # a version we do not know
        (100, GOOD[:-6]),  # truncated
        (100, GOOD[:-2] + "!="),  # not base64
        (100, GOOD.replace("kca1b:100:", "kca1b:100:é")),
        (100, "kca1b:100:" + base64.urlsafe_b64encode(b"not zlib").decode()),
        (100, encoded("kca1b", 100, b"")),
        (100, encoded("kca1b", 100, b"\xff" * (METADATA_SPAN // 8 + 1))),  # beyond the span
        (100, encoded("kca1b", 100, b"\xff" * 10_000_000)),  # a zlib bomb
        (100, "kca1b:100:" + base64.urlsafe_b64encode(zlib.compress(b"\x01") * 2).decode()),  # two streams
        (100, encoded("kca1r", 100, b"\x00\x02\x01")),  # an odd number of runs
        (100, encoded("kca1r", 100, b"\x00\x02\x00\x01")),  # an empty run
        (100, encoded("kca1r", 100, b"\x00\x80")),  # a truncated varint
        (100, encoded("kca1r", 100, b"\x00\xff\xff\xff\xff\xff\x01")),  # a varint too long
        (100, encoded("kca1r", 100, bytes([0, 0x81, 0x80, 0x10]))),  # a run one beyond the span
    ],
)
def test_metadata_not_ours_or_corrupt_names_nothing(watermark, metadata):
    assert GOOD.startswith("kca1b:100:")
    assert decode_metadata(100, GOOD) == {103, 110}
    assert decode_metadata(watermark, metadata) == set()


@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda raw: encoded("kca1r", 7, raw)))
@hypothesis_settings(max_examples=300, deadline=None)
def test_decoding_never_raises(metadata):
    for decoded in decode_metadata(7, "kca1b:7:" + metadata), decode_metadata(7, metadata):
        assert all(8 <= offset < 8 + METADATA_SPAN for offset in decoded)


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, list[tuple[str, int]]]:
    """A start, and takes in increasing offsets (with gaps) interleaved with finishes of taken offsets."""
    start = draw(st.integers(0, 10**12))
    steps: list[tuple[str, int]] = []
    next_offset, outstanding = start, []
    for _ in range(draw(st.integers(0, 200))):
        if outstanding and draw(st.booleans()):
            steps.append(("finish", outstanding.pop(draw(st.integers(0, len(outstanding) - 1)))))
        else:
            next_offset += draw(st.integers(0, 3) | st.integers(0, 40))
            steps.append(("take", next_offset))
            outstanding.append(next_offset)
            next_offset += 1
    return start, steps


@given(histories())
@hypothesis_settings(max_examples=200, deadline=None)
def test_the_watermark_and_the_metadata_follow_their_definitions(history):
    start, steps = history
    offsets = PartitionOffsets(start)
    taken: set[int] = set()
    finished: set[int] = set()
    watermark = start
    for step, offset in steps:
        if step == "take":
            assert offsets.take(offset)
            taken.add(offset)
        else:
            offsets.finish(offset)
            finished.add(offset)
        watermark = expected_watermark(start, taken, finished)
        assert offsets.watermark == watermark
        assert offsets.unfinished == len(taken - finished)
    above = sorted(offset for offset in finished if offset > watermark)
    assert offsets.finished_above() == above
    assert offsets.highest_finished == (max(finished) if finished else None)
    assert decode_metadata(watermark, offsets.metadata()) == set(above)  # spans of a few thousand always fit
    assert len(offsets.metadata()) <= METADATA_BYTES


@given(histories(), st.integers(30, 400))
@hypothesis_settings(max_examples=150, deadline=None)
def test_after_a_restart_exactly_the_encoded_offsets_are_skipped(history, max_bytes):
    start, steps = history
    before = PartitionOffsets(start)
    for step, offset in steps:
        getattr(before, step)(offset)
    watermark = before.watermark
    decoded = decode_metadata(watermark, before.metadata(max_bytes))
    above = before.finished_above()
    assert decoded == set(above[: len(decoded)])
    after = PartitionOffsets(watermark, decoded)
    taken = sorted({offset for step, offset in steps if step == "take" and offset >= watermark})
    assert [offset for offset in taken if not after.take(offset)] == sorted(decoded)


def test_a_million_messages_leave_nothing_behind():
    tracemalloc.start()
    try:
        offsets = PartitionOffsets(0)
        offsets.take(0)
        offsets.finish(0)
        before = tracemalloc.get_traced_memory()[0]
        for block in range(1, 1_000_000, 100):  # in order, then out of order within blocks of 100
            for offset in range(block, block + 100):
                offsets.take(offset)
            for offset in reversed(range(block, block + 100)) if block // 100 % 2 else range(block, block + 100):
                offsets.finish(offset)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert (offsets.watermark, offsets.unfinished, offsets.span) == (1_000_001, 0, 0)
    assert grown < 64 * 1024, f"{grown} bytes held after a million messages"


@pytest.mark.parametrize("module", [tracking, offset_metadata])
def test_the_tracking_modules_import_only_the_standard_library_and_each_other(module):
    with open(module.__file__, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    ours = {offset_metadata.__name__}
    assert imported, "no imports found: the test reads the wrong file"
    assert {name for name in imported if name.partition(".")[0] not in sys.stdlib_module_names} <= ours
