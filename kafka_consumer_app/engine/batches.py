"""
Batch receivers on the workers: messages gathered per partition, run as batches, finished one by one (ADR 8).

A topic whose receivers are ``batch_signal`` receivers runs on :class:`BatchWorkers`, at any
``CONCURRENCY`` (1 included). The loop thread takes each fetched message in as the workers do (its offset
noted in the partition's tracker) and adds it to its partition's open batch (:class:`Batcher`), which
goes to the scheduler once it holds ``BATCH_SIZE`` messages or ``BATCH_WAIT`` seconds after its first.
The scheduler runs one batch of a partition at a time, in order (the ``"partition"`` ordering, whatever
``ORDERING`` says); batches of different partitions run in parallel.

A worker runs a batch (:class:`BatchJob`) until every message in it is finished or a retry waits:

- every receiver returned: every message is handled;
- a receiver raised :class:`~kafka_consumer_app.exceptions.BatchFailed` ``(index, cause)`` (every receiver
  that raised did, the lowest index counts): the messages before ``index`` are handled; ``messages[index]``
  is retried alone, through the failure policy (the batch's attempts count for it) until it is handled or
  given up (parked, skipped, or stop); then the messages after it go again, as a new batch, to the
  receivers that raised;
- any other exception: the whole batch is retried (the receivers that raised), then given up: ``stop``
  stops with nothing of it committed; ``dead-letter`` parks each of its messages and ``skip`` skips each,
  with the reason ``batch-failed`` and the batch's receivers, errors and attempts.

A message's offset is finished in the tracker when it is handled, parked or skipped, never before. A
message whose value cannot be decoded is taken out of its batch and given up as malformed.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka import Message as KafkaMessage

from kafka_consumer_app.engine.batch_dispatch import BatchDelivery, BatchDispatcher, blamed, split_at
from kafka_consumer_app.engine.db import OldConnectionCloser
from kafka_consumer_app.engine.delivery import Delivery
from kafka_consumer_app.engine.dispatch import DispatchResult, ReceiverFailure
from kafka_consumer_app.engine.hooks import HANDLED
from kafka_consumer_app.engine.outages import hold_back
from kafka_consumer_app.engine.policy import Decision, FailurePolicy, FailureReport, Park, Retry, Skip, Stop
from kafka_consumer_app.engine.progress import Progress, RunSummary
from kafka_consumer_app.engine.records import Location
from kafka_consumer_app.engine.scheduling import Scheduler, Work
from kafka_consumer_app.engine.watchdog import Watchdog, WatchSlot
from kafka_consumer_app.engine.workers import Workers
from kafka_consumer_app.exceptions import DeserializationError
from kafka_consumer_app.message import Message
from kafka_consumer_app.settings.topics import TopicConfig

logger = logging.getLogger(__name__)

#: The reason (``dlt.reason``) of a message parked or skipped because its whole batch failed.
REASON_BATCH_FAILED = "batch-failed"


@dataclass(eq=False)
class BatchJob:
    """A batch on its way through a worker: its unfinished messages, and where its failures left it."""

    #: The messages not finished yet, in offset order.
    raws: list[KafkaMessage]
    #: The first message runs alone (a BatchFailed named it); the others wait for it.
    alone: bool = False
    #: Failed attempts of what runs next: the whole batch, or the message alone.
    attempts_made: int = 0
    #: The receivers to call next (those that failed); None: every receiver.
    failures: Sequence[ReceiverFailure] | None = None
    #: The receivers the messages after the one alone go to, once it is finished; None: every receiver.
    owing: Sequence[ReceiverFailure] | None = None
    #: Database store: the first ``rerun`` run again (a BatchFailed rolled them back); then ``undecided`` decides.
    rerun: int = 0
    undecided: list[ReceiverFailure] | None = None

    def unit(self) -> list[KafkaMessage]:
        """What runs next: the messages to run again, the message alone, or the whole batch."""
        if self.rerun:
            return self.raws[: self.rerun]
        return self.raws[:1] if self.alone else self.raws

    def finished(self, count: int) -> None:
        """The first ``count`` messages are finished; after the one alone, the rest go to the receivers owed."""
        del self.raws[:count]
        if self.alone and count:
            self.alone, self.failures, self.attempts_made = False, self.owing, 0


class Batcher:
    """Loop thread only: the open batch of each partition, until it is full or its ``BATCH_WAIT`` is over."""

    def __init__(self, size: int, wait: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._size = size
        self._wait = wait
        self._clock = clock
        self._open: dict[int, tuple[float, list[KafkaMessage]]] = {}

    def extend(self, partition: int, raws: Sequence[KafkaMessage]) -> list[list[KafkaMessage]]:
        """Add messages to their partition's open batch; return the batches that filled, in order."""
        entry = self._open.get(partition)
        pending = raws if entry is None else [*entry[1], *raws]
        size = self._size
        full = [list(pending[start : start + size]) for start in range(0, len(pending) - size + 1, size)]
        rest = list(pending[len(full) * size :])
        if not rest:
            self._open.pop(partition, None)
        elif entry is None or full:  # the rest came after the last full batch: its wait starts now
            self._open[partition] = (self._clock() + self._wait, rest)
        else:
            entry[1][:] = rest
        return full

    def add(self, partition: int, raw: KafkaMessage) -> list[KafkaMessage] | None:
        """Add a message to its partition's open batch; return the batch if that filled it."""
        entry = self._open.get(partition)
        if entry is None:
            entry = self._open[partition] = (self._clock() + self._wait, [])
        entry[1].append(raw)
        if len(entry[1]) < self._size:
            return None
        del self._open[partition]
        return entry[1]

    def due(self) -> list[tuple[int, list[KafkaMessage]]]:
        """Take out the open batches whose wait is over, with their partitions."""
        now = self._clock()
        ready = [(partition, raws) for partition, (due, raws) in self._open.items() if due <= now]
        for partition, _ in ready:
            del self._open[partition]
        return ready

    def next_due(self) -> float | None:
        """When the first open batch's wait is over (clock time), or None without open batches."""
        return min((due for due, _ in self._open.values()), default=None)

    def drop(self, partitions: Collection[int]) -> None:
        """Forget the open batches of ``partitions`` (revoked: their next owner fetches the messages)."""
        for partition in partitions:
            self._open.pop(partition, None)

    def __len__(self) -> int:
        return len(self._open)


class BatchWorkers(Workers):
    """The workers of a topic with batch receivers: they run batches of one partition at a time."""

    def __init__(
        self,
        batches: BatchDispatcher,
        config: TopicConfig,
        delivery: Delivery,
        policy: FailurePolicy,
        summary: RunSummary,
        progress: Progress,
        watchdog: Watchdog,
    ) -> None:
        super().__init__(config, delivery, policy, summary, progress, watchdog)
        self.scheduler = Scheduler("partition")  # a batch occupies its partition
        self._batches = BatchDelivery(delivery.converter, batches, delivery.emitter)
        self._batcher = Batcher(config.concurrency.batch_size, config.concurrency.batch_wait)
        #: OFFSET_STORE "database": each batch runs in one transaction with its partition's position.
        self._database = delivery.positions

    # -- the loop thread -------------------------------------------------------------------

    def after_batch(self, client: Consumer) -> None:
        """Send the open batches whose wait is over, then what the workers do after every poll."""
        for partition, raws in self._batcher.due():
            self._put(partition, raws)
        super().after_batch(client)

    def poll_timeout(self, timeout: float) -> float:
        """How long the loop's poll may wait: no longer than until the first open batch's wait is over."""
        timeout = super().poll_timeout(timeout)
        due = self._batcher.next_due()
        return timeout if due is None else max(0.0, min(timeout, due - time.monotonic()))

    def busy(self) -> bool:
        """Whether a batch is open, queued, running or waiting for a retry."""
        return bool(self._batcher) or super().busy()

    def revoking(self, client: Consumer, partitions: Sequence[TopicPartition]) -> None:
        """Drop the revoked partitions' open batches, then as the workers do."""
        self._batcher.drop({partition.partition for partition in partitions})
        super().revoking(client, partitions)

    def forget(self, partitions: Sequence[TopicPartition]) -> None:
        """Drop the partitions' open batches, then as the workers do."""
        self._batcher.drop({partition.partition for partition in partitions})
        super().forget(partitions)

    def take_in_all(self, client: Consumer, raws: Sequence[KafkaMessage]) -> None:
        """
        The fetched messages of one poll: per run of one partition's messages (librdkafka hands them
        out a fetch at a time), one look at its tracker, one batcher call and one backpressure check.
        """
        start = 0
        while start < len(raws):
            partition = raws[start].partition() or 0
            end = start + 1
            while end < len(raws) and raws[end].partition() == partition:
                end += 1
            self._take_in_run(client, partition, raws[start:end])
            start = end

    def _take_in_run(self, client: Consumer, partition: int, run: Sequence[KafkaMessage]) -> None:
        with self._lock:
            tracker = self._offsets.get(partition)
            if tracker is None:
                tracker = self._offsets[partition] = self._tracker(partition, run[0].offset() or 0)
            kept = [raw for raw in run if tracker.take(raw.offset() or 0)]
            if len(kept) < len(run):
                self._changed.add(partition)  # finished before the last commit: nothing runs, the watermark moves
            spread = tracker.span
        for full in self._batcher.extend(partition, kept):
            self._put(partition, full)
        if partition not in self._paused and self._full(partition, spread) and not self._make_room(partition, spread):
            self._pause(client, partition)

    def _queue(self, raw: KafkaMessage, location: Location) -> None:
        full = self._batcher.add(location.partition, raw)
        if full is not None:
            self._put(location.partition, full)

    def _put(self, partition: int, raws: list[KafkaMessage]) -> None:
        self.scheduler.put(Work(partition, raws[0].offset() or 0, None, BatchJob(raws)))

    def _backlog(self, partition: int) -> int:
        """Messages, not batches: those taken in and not finished (open, queued, running or retrying)."""
        with self._lock:
            tracker = self._offsets.get(partition)
            return tracker.unfinished if tracker is not None else 0

    # -- a worker thread -------------------------------------------------------------------

    def _run(self, work: Work, slot: WatchSlot, close_old_connections: OldConnectionCloser) -> None:
        """Run the batch until all of it is finished, or a retry waits (holding back its partition)."""
        job: BatchJob = work.payload
        if job.failures is None and job.attempts_made == 0 and hold_back(self.scheduler, work, self._policy.outage):
            return
        while job.raws and not work._revoked:  # revoked: the rest is its partition's next owner's
            close_old_connections()
            try:
                waiting = self._step(work, job, slot)
            finally:
                close_old_connections()
            if waiting:
                return
        self.scheduler.done(work)

    def _step(self, work: Work, job: BatchJob, slot: WatchSlot) -> bool:
        """One attempt at what runs next (the batch, or a message alone); True when a retry now waits."""
        converted, malformed = self._batches.convert(job.unit())
        if malformed:
            self._give_up_malformed(job, malformed)
            return False
        raws = [raw for raw, _ in converted]
        result = self._attempt(raws, [message for _, message in converted], job, slot)
        if result is None:  # the database position is past the first: handled before, by this group
            return self._handled_before(job, raws)
        rerun, job.rerun = job.rerun, 0
        if result.ok:
            self._handled(raws)
            job.finished(len(raws))
            if rerun and job.undecided:  # then the message after them: its BatchFailed decides now
                job.alone, job.attempts_made = True, 0
                return self._message_failed(work, job, job.undecided)
            return False
        index = 0 if job.alone else split_at(result.failures, len(raws))
        if index is None:
            return self._batch_failed(work, job, result.failures)
        if index and self._database is not None and not job.alone:  # rolled back: run those before it again
            job.rerun, job.owing, job.undecided = index, result.failures, blamed(result.failures)
            return False
        self._handled(raws[:index])
        if not job.alone:
            job.finished(index)
            job.alone, job.owing = True, result.failures
        return self._message_failed(work, job, blamed(result.failures))

    def _attempt(
        self, raws: list[KafkaMessage], messages: list[Message], job: BatchJob, slot: WatchSlot
    ) -> DispatchResult | None:
        """One attempt at the unit; with the database store, in one transaction (None: handled before)."""
        positions = self._database
        if positions is None:
            return self._batches.attempt(messages, job.failures, slot, raws[0])
        first, last = raws[0].offset() or 0, raws[-1].offset() or 0
        # A failure rolled back every receiver's writes: a retry runs them all again.
        run = functools.partial(self._batches.attempt, messages, None, slot, raws[0])
        return positions.attempt(raws[0].partition() or 0, first, last, run)

    def _handled_before(self, job: BatchJob, raws: list[KafkaMessage]) -> bool:
        """Finish the unit's messages that the database position is past; the rest run again."""
        assert self._database is not None
        position = self._database.next_offset(raws[0].partition() or 0)
        done = [raw for raw in raws if (raw.offset() or 0) < position]
        logger.info(
            "Skipped %d messages of %s: the database position shows them handled already.", len(done), _span(raws)
        )
        if done:
            self.mark_all(done[0].partition() or 0, done)
        job.finished(len(done))
        return False

    def _handled(self, raws: Sequence[KafkaMessage]) -> None:
        if not raws:
            return
        with self._deciding:
            self._policy.record_success()
        self.mark_all(raws[0].partition() or 0, raws)  # a batch is of one partition
        with self._lock:
            self._summary.handled += len(raws)
        if "after_message" in self._emitter.wanted:
            for raw in raws:
                self._emitter.emit("after_message", raw, HANDLED)

    def _message_failed(self, work: Work, job: BatchJob, failures: list[ReceiverFailure]) -> bool:
        """The first message, alone, failed: retry it later, or give it up; then the rest may go on."""
        raw = job.raws[0]
        malformed = next((f.error for f in failures if isinstance(f.error, DeserializationError)), None)
        if malformed is not None:
            decision = self._decide(lambda: self._policy.decide_malformed(malformed))
        else:
            decision = self._decide(lambda: self._policy.decide(failures, job.attempts_made + 1))
        if isinstance(decision, Retry):
            return self._retry(work, job, [raw], decision)
        self._give_up(raw, decision)
        job.finished(1)
        return False

    def _batch_failed(self, work: Work, job: BatchJob, failures: list[ReceiverFailure]) -> bool:
        """The whole batch failed: retry it later, or give each of its messages up (or stop)."""
        decision = self._decide(lambda: self._policy.decide(failures, job.attempts_made + 1))
        if isinstance(decision, Retry):
            return self._retry(work, job, job.raws, decision)
        if isinstance(decision, Stop):
            self._give_up(job.raws[0], decision)  # raises: nothing of the batch is committed
        assert isinstance(decision, Park | Skip)
        self._log_given_up(job.raws, decision.report, "parked" if isinstance(decision, Park) else "skipped")
        report = dataclasses.replace(decision.report, reason=REASON_BATCH_FAILED)
        each = Park(report) if isinstance(decision, Park) else Skip(report)
        for raw in job.raws:
            self._give_up(raw, each)
        job.finished(len(job.raws))
        return False

    def _retry(self, work: Work, job: BatchJob, raws: Sequence[KafkaMessage], retry: Retry) -> bool:
        job.attempts_made, job.failures = retry.attempts_made, retry.failures
        what = "alone" if len(raws) == 1 and job.alone else f"with its batch of {len(raws)} ({_span(raws)})"
        outcomes = self.outcomes
        assert outcomes is not None, "the consumer sets the outcomes before it starts the workers"
        with self._deciding:
            outcomes.retrying(raws[0], retry, f"{what}, holding back its partition meanwhile")
        # False when the partition was revoked meanwhile: its next owner fetches the messages again.
        self.scheduler.retry_at(work, time.monotonic() + retry.delay)
        return True

    def _give_up(self, raw: KafkaMessage, decision: Decision) -> None:
        """Park, skip (and finish) one message, or stop: the consumer's outcomes carry it out."""
        outcomes = self.outcomes
        assert outcomes is not None, "the consumer sets the outcomes before it starts the workers"
        with self._deciding:  # parks one at a time: the dead-letter producer waits for each write
            outcomes.carry_out(None, raw, decision)  # raises for a Stop: fatal, and the message unfinished

    def _give_up_malformed(self, job: BatchJob, malformed: list[tuple[KafkaMessage, DeserializationError]]) -> None:
        """Take the messages that cannot be decoded out of the batch and give them up as malformed."""
        for raw, error in malformed:
            self._give_up(raw, self._decide(functools.partial(self._policy.decide_malformed, error)))
        bad = {id(raw) for raw, _ in malformed}
        was_alone = job.alone
        job.raws[:] = [raw for raw in job.raws if id(raw) not in bad]
        if was_alone:  # the message alone was the malformed one: it is finished
            job.alone, job.failures, job.attempts_made = False, job.owing, 0

    def _log_given_up(self, raws: Sequence[KafkaMessage], report: FailureReport, outcome: str) -> None:
        for receiver, error in zip(report.receivers, report.errors, strict=True):
            logger.error(
                "Receiver %s failed on the batch of %d messages %s (group %s) on attempt %d, its last: %s: %s; "
                "each of its messages is %s, as FAILURE_POLICY says.",
                receiver,
                len(raws),
                _span(raws),
                self._config.group_id,
                report.attempts,
                type(error).__name__,
                error,
                outcome,
                exc_info=(type(error), error, error.__traceback__),
            )


def _span(raws: Sequence[KafkaMessage]) -> str:
    """``topic[partition]@first-last`` of a batch."""
    first, last = raws[0], raws[-1]
    return f"{first.topic()}[{first.partition()}]@{first.offset()}-{last.offset()}"
