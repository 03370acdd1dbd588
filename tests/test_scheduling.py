"""The scheduler of concurrent workers: lanes per ordering, retries that block one lane, revoke, close, drain."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable

import pytest

from kafka_consumer_app.engine.scheduling import ORDERINGS, Scheduler, Work

#: Generous bound for anything a thread must do soon; only a broken scheduler reaches it.
JOIN_TIMEOUT = 10.0


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def work(partition: int, offset: int, key: bytes | None = None) -> Work:
    return Work(partition, offset, key, payload=f"{partition}@{offset}")


def take_all(scheduler: Scheduler) -> list[Work]:
    """Every item runnable now, taken (without finishing any)."""
    taken = []
    while (item := scheduler.take(0)) is not None:
        taken.append(item)
    return taken


def offsets(items: list[Work]) -> list[int]:
    return [item.offset for item in items]


def start(target: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_an_unknown_ordering_is_refused() -> None:
    assert ORDERINGS == ("key", "partition", "none")
    with pytest.raises(ValueError, match="Unknown ordering 'keys'"):
        Scheduler("keys")


def test_key_ordering_runs_one_item_per_key_and_partition() -> None:
    scheduler = Scheduler("key")
    items = [work(0, 0, b"a"), work(0, 1, b"a"), work(0, 2, b"b"), work(1, 3, b"a"), work(0, 4), work(0, 5)]
    for item in items:
        scheduler.put(item)
    assert offsets(take_all(scheduler)) == [0, 2, 3, 4]  # keyless messages of a partition share one lane
    scheduler.done(items[0])
    scheduler.done(items[4])
    assert offsets(take_all(scheduler)) == [1, 5]


def test_partition_ordering_runs_one_item_per_partition() -> None:
    scheduler = Scheduler("partition")
    items = [work(0, 0, b"a"), work(0, 1, b"b"), work(1, 2, b"a"), work(1, 3, None)]
    for item in items:
        scheduler.put(item)
    assert offsets(take_all(scheduler)) == [0, 2]
    scheduler.done(items[2])
    assert offsets(take_all(scheduler)) == [3]
    scheduler.done(items[0])
    assert offsets(take_all(scheduler)) == [1]


def test_no_ordering_runs_everything_at_once() -> None:
    scheduler = Scheduler("none")
    items = [work(0, offset, b"a") for offset in range(5)]
    for item in items:
        scheduler.put(item)
    assert take_all(scheduler) == items
    assert scheduler.running([0]) == 5
    for item in items:
        scheduler.done(item)
    assert scheduler.queued(0) == 0
    assert scheduler.snapshot() == {}


def test_lanes_are_served_oldest_runnable_first() -> None:
    scheduler = Scheduler("key")
    first, second, third = work(0, 0, b"a"), work(0, 1, b"b"), work(0, 2, b"a")
    for item in (first, second, third):
        scheduler.put(item)
    assert scheduler.take(0) is first
    scheduler.done(first)  # lane "a" becomes runnable again after lane "b" did
    assert scheduler.take(0) is second
    assert scheduler.take(0) is third


def test_queued_counts_items_put_and_not_finished() -> None:
    clock = FakeClock()
    scheduler = Scheduler("key", clock)
    items = [work(0, 0, b"a"), work(0, 1, b"b"), work(0, 2, b"c"), work(1, 3, b"a")]
    for item in items:
        scheduler.put(item)
    assert (scheduler.queued(0), scheduler.queued(1), scheduler.queued(2)) == (3, 1, 0)
    assert scheduler.snapshot() == {0: 3, 1: 1}
    running, retrying = scheduler.take(0), scheduler.take(0)
    assert running is not None and retrying is not None
    scheduler.retry_at(retrying, 5.0)
    assert scheduler.queued(0) == 3  # running and waiting for a retry count
    assert (scheduler.running(), scheduler.running([0]), scheduler.running([1])) == (1, 1, 0)
    scheduler.done(running)
    assert scheduler.snapshot() == {0: 2, 1: 1}


def test_a_retrying_item_stays_at_the_head_of_its_lane_until_due() -> None:
    clock = FakeClock()
    scheduler = Scheduler("key", clock)
    failed, behind, other = work(0, 0, b"a"), work(0, 1, b"a"), work(0, 2, b"b")
    for item in (failed, behind, other):
        scheduler.put(item)
    assert scheduler.take(0) is failed
    assert scheduler.next_due() is None
    assert scheduler.retry_at(failed, 10.0) is True
    assert scheduler.next_due() == 10.0
    assert take_all(scheduler) == [other]  # "behind" waits behind its failed head
    clock.now = 9.9
    assert scheduler.take(0) is None
    clock.now = 10.0
    assert scheduler.take(0) is failed
    assert scheduler.next_due() is None
    assert scheduler.take(0) is None
    scheduler.done(failed)
    assert scheduler.take(0) is behind


def test_next_due_is_the_earliest_retry_time() -> None:
    scheduler = Scheduler("none", FakeClock())
    items = [work(0, offset) for offset in range(3)]
    for item in items:
        scheduler.put(item)
    take_all(scheduler)
    for item, due in zip(items, (30.0, 10.0, 20.0), strict=True):
        scheduler.retry_at(item, due)
    assert scheduler.next_due() == 10.0


def test_done_or_retry_of_an_item_not_running_is_refused() -> None:
    scheduler = Scheduler("key")
    item = work(0, 0)
    scheduler.put(item)
    with pytest.raises(ValueError, match="is queued, not running"):
        scheduler.done(item)
    assert scheduler.take(0) is item
    scheduler.done(item)
    with pytest.raises(ValueError, match="is done, not running"):
        scheduler.retry_at(item, 0.0)


def test_revoke_drops_queued_and_retrying_items_and_keeps_running_ones() -> None:
    clock = FakeClock()
    scheduler = Scheduler("key", clock)
    running, behind, retrying, queued = work(0, 0, b"a"), work(0, 1, b"a"), work(0, 2, b"b"), work(0, 3, b"c")
    kept = [work(1, 4, b"a"), work(1, 5, b"a")]
    for item in (running, behind, retrying, queued, *kept):
        scheduler.put(item)
    assert scheduler.take(0) is running
    assert scheduler.take(0) is retrying
    scheduler.retry_at(retrying, 1.0)

    assert scheduler.revoke([0, 7]) == [behind, retrying, queued]
    assert (scheduler.queued(0), scheduler.running([0]), scheduler.next_due()) == (1, 1, None)
    clock.now = 2.0
    assert take_all(scheduler) == [kept[0]]  # nothing of partition 0 runs any more
    scheduler.done(queued)  # a dropped item: harmless
    assert scheduler.queued(0) == 1
    scheduler.done(running)
    assert scheduler.snapshot() == {1: 2}
    assert scheduler.running([0]) == 0


def test_a_partition_assigned_back_queues_behind_its_item_still_running() -> None:
    scheduler = Scheduler("key")
    running = work(0, 0, b"a")
    scheduler.put(running)
    assert scheduler.take(0) is running
    assert scheduler.revoke([0]) == []
    again = work(0, 0, b"a")  # fetched again once the partition came back
    scheduler.put(again)
    assert scheduler.take(0) is None
    assert scheduler.retry_at(running, 0.0) is False  # revoked while it ran: dropped, not retried
    assert scheduler.next_due() is None
    assert scheduler.take(0) is again
    assert scheduler.snapshot() == {0: 1}


@pytest.mark.parametrize("ordering", ["key", "partition"])
def test_lanes_run_in_order_and_one_at_a_time_while_lanes_overlap(ordering: str) -> None:
    """Eight workers, random receiver times: per lane no overlap and offsets in order; across lanes, overlap."""
    scheduler = Scheduler(ordering)
    rng = random.Random(8)
    keys = [b"k%d" % n for n in range(6)] + [None]
    items = [work(offset % 3, offset, rng.choice(keys)) for offset in range(600)]
    delays = {id(item): rng.uniform(0, 0.002) for item in items}
    lane: Callable[[Work], Hashable] = (
        (lambda item: (item.partition, item.key)) if ordering == "key" else (lambda item: item.partition)
    )
    records: list[tuple[Hashable, int, float, float]] = []
    active, peak = [0], [0]
    guard = threading.Lock()
    finished = threading.Event()

    def worker() -> None:
        while (item := scheduler.take(None)) is not None:
            began = time.perf_counter()
            with guard:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(delays[id(item)])
            with guard:
                active[0] -= 1
                records.append((lane(item), item.offset, began, time.perf_counter()))
            scheduler.done(item)
            if len(records) == len(items):
                finished.set()

    workers = [start(worker) for _ in range(8)]
    for item in items:
        scheduler.put(item)
    assert finished.wait(JOIN_TIMEOUT)
    assert scheduler.snapshot() == {}
    scheduler.close()
    for thread in workers:
        thread.join(JOIN_TIMEOUT)
    assert sorted(offset for _, offset, _, _ in records) == list(range(600))
    by_lane: dict[Hashable, list[tuple[int, float, float]]] = defaultdict(list)
    for name, offset, began, ended in records:
        by_lane[name].append((offset, began, ended))
    for runs in by_lane.values():
        runs.sort(key=lambda run: run[1])
        assert [run[0] for run in runs] == sorted(run[0] for run in runs)
        assert all(later[1] >= earlier[2] for earlier, later in itertools.pairwise(runs))
    assert peak[0] > 1


def test_items_of_different_lanes_run_at_the_same_time() -> None:
    scheduler = Scheduler("key")
    for item in (work(0, 0, b"a"), work(0, 1, b"b")):
        scheduler.put(item)
    together = threading.Barrier(2, timeout=JOIN_TIMEOUT)
    met: list[int] = []

    def worker() -> None:
        item = scheduler.take(JOIN_TIMEOUT)
        assert item is not None
        together.wait()  # both items are running now, or this breaks
        met.append(item.offset)
        scheduler.done(item)

    threads = [start(worker) for _ in range(2)]
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert sorted(met) == [0, 1]


def test_a_retry_holds_back_only_its_key_while_the_partition_flows() -> None:
    """Three workers: while a failed message waits for its retry, its partition's other keys all finish."""
    clock = FakeClock()
    scheduler = Scheduler("key", clock)
    failed, behind = work(0, 0, b"slow"), work(0, 1, b"slow")
    others = [work(0, offset, b"k%d" % (offset % 4)) for offset in range(2, 42)]
    for item in (failed, behind, *others):
        scheduler.put(item)
    assert scheduler.take(0) is failed
    scheduler.retry_at(failed, 3600.0)  # far beyond any real wait, so no worker can reach it by itself
    started: list[int] = []
    guard = threading.Lock()
    others_done, behind_done = threading.Event(), threading.Event()

    def worker() -> None:
        while (item := scheduler.take(None)) is not None:
            with guard:
                started.append(item.offset)
            scheduler.done(item)
            with guard:
                if len(started) == len(others):
                    others_done.set()
            if item is behind:
                behind_done.set()

    threads = [start(worker) for _ in range(3)]
    assert others_done.wait(JOIN_TIMEOUT)
    assert sorted(started) == offsets(others)
    assert (scheduler.queued(0), scheduler.running(), scheduler.next_due()) == (2, 0, 3600.0)
    clock.now = 3600.0
    assert scheduler.take(0) is failed
    scheduler.done(failed)
    assert behind_done.wait(JOIN_TIMEOUT)  # a worker took the next of the lane once its head was done
    scheduler.close()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert started[-1] == 1
    assert scheduler.snapshot() == {}


def wait_for_idle(scheduler: Scheduler, takers: int) -> None:
    """Until ``takers`` threads are blocked in take(), within JOIN_TIMEOUT."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    while scheduler.idle() < takers:
        assert time.monotonic() < deadline, "the takers never blocked"
        time.sleep(0.001)


def test_a_blocked_taker_wakes_up_for_a_retry_when_it_is_due() -> None:
    """Real time: the taker was asleep with nothing to wait for; the retry 0.5 s later must wake it."""
    scheduler = Scheduler("key")
    failed = work(0, 0, b"a")
    scheduler.put(failed)
    assert scheduler.take(0) is failed
    taken: list[tuple[Work | None, float]] = []
    taker = start(lambda: taken.append((scheduler.take(None), time.monotonic())))
    wait_for_idle(scheduler, 1)
    due = time.monotonic() + 0.5
    scheduler.retry_at(failed, due)
    taker.join(JOIN_TIMEOUT)
    assert len(taken) == 1
    item, when = taken[0]
    assert item is failed
    assert when >= due


def test_take_times_out_and_close_wakes_every_taker() -> None:
    scheduler = Scheduler("key")
    assert scheduler.take(0.01) is None
    results: list[Work | None] = []
    takers = [start(lambda: results.append(scheduler.take(None))) for _ in range(3)]
    wait_for_idle(scheduler, 3)
    scheduler.close()
    for thread in takers:
        thread.join(JOIN_TIMEOUT)
    assert results == [None, None, None]
    scheduler.put(work(0, 0))
    assert scheduler.take(None) is None  # closed: nothing is taken any more
    assert scheduler.queued(0) == 1


def test_wait_for_running_drains_the_partitions_asked_for() -> None:
    scheduler = Scheduler("partition")
    first, second = work(0, 0), work(1, 1)
    for item in (first, second):
        scheduler.put(item)
    take_all(scheduler)
    assert scheduler.wait_for_running([0], 0.01) is False
    assert scheduler.wait_for_running([2], 0) is True
    drained: list[bool] = []
    waiter = start(lambda: drained.append(scheduler.wait_for_running([0], JOIN_TIMEOUT)))
    scheduler.done(first)
    waiter.join(JOIN_TIMEOUT)
    assert drained == [True]
    assert scheduler.wait_for_running(None, 0.01) is False
    scheduler.retry_at(second, time.monotonic() + 60)  # waiting for a retry is not running
    assert scheduler.wait_for_running(None, 0) is True
