"""
Workers: CONCURRENCY threads that run one topic's receivers, fed by the loop thread (ADR 8).

The loop thread alone talks to the client. It hands each fetched message to :meth:`Workers.take_in`,
which notes its offset in the partition's :class:`~kafka_consumer_app.engine.tracking.PartitionOffsets`
and puts it in the :class:`~kafka_consumer_app.engine.scheduling.Scheduler`, which keeps the order
``ORDERING`` asks for. A worker takes a runnable message, makes one attempt
(:class:`~kafka_consumer_app.engine.delivery.Delivery`) and reports it finished (handled, parked or
skipped), waiting for a retry (which holds back only its own key), or fatal. A partition that reaches
``MAX_QUEUED`` unfinished messages makes the loop wait briefly for room
(:class:`~kafka_consumer_app.engine.backpressure.Room`), then pause it. After every batch the loop
resumes the partitions below half, and stores each partition's watermark with the offsets finished
above it as the commit's metadata.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage
from django.db import connections

from kafka_consumer_app.engine.backpressure import Room
from kafka_consumer_app.engine.db import OldConnectionCloser
from kafka_consumer_app.engine.delivery import Delivery
from kafka_consumer_app.engine.dispatch import ReceiverFailure
from kafka_consumer_app.engine.hooks import HANDLED, HookEmitter, WorkersState
from kafka_consumer_app.engine.outages import hold_back
from kafka_consumer_app.engine.outcomes import Outcomes
from kafka_consumer_app.engine.policy import Decision, FailurePolicy, Retry
from kafka_consumer_app.engine.progress import Progress, RunSummary
from kafka_consumer_app.engine.records import Location, locate
from kafka_consumer_app.engine.retries import Resume, resume_on_client
from kafka_consumer_app.engine.scheduling import Scheduler, Work
from kafka_consumer_app.engine.tracking import PartitionOffsets, decode_metadata
from kafka_consumer_app.engine.watchdog import Watchdog, WatchSlot
from kafka_consumer_app.exceptions import DeserializationError
from kafka_consumer_app.settings.topics import TopicConfig

logger = logging.getLogger(__name__)

#: Seconds a worker waits for a message before it looks again whether it should exit.
WORKER_WAIT = 0.2
#: On revoke, how long the in-flight messages of the revoked partitions may run before their offsets are committed.
REVOKE_DRAIN_TIMEOUT = 10.0
#: Seconds between two stores of the watermarks (librdkafka commits what is stored every auto.commit.interval.ms).
STORE_INTERVAL = 0.2
#: A partition also pauses when its watermark is this many times MAX_QUEUED behind the newest offset taken.
SPAN_FACTOR = 10
#: How long the loop's poll waits while a partition is paused, so that it resumes soon after workers catch up.
PAUSED_POLL_TIMEOUT = 0.05


@dataclass(eq=False)
class Job:
    """One fetched message on its way through the workers: how often it failed, and which receivers."""

    raw: KafkaMessage
    location: Location
    attempts_made: int = 0
    #: On a retry, the receivers that failed (only they are called again); None for the first attempt.
    failures: Sequence[ReceiverFailure] | None = None


class Workers:
    """The worker threads of one consumer, the scheduler that feeds them and the offsets they finish."""

    def __init__(
        self,
        config: TopicConfig,
        delivery: Delivery,
        policy: FailurePolicy,
        summary: RunSummary,
        progress: Progress,
        watchdog: Watchdog,
    ) -> None:
        self._config = config
        self._delivery = delivery
        self._policy = policy
        self._summary = summary
        self._progress = progress
        self._watchdog = watchdog
        self._emitter: HookEmitter = delivery.emitter
        #: Set by the consumer once it exists: it carries out park, skip and stop (its mark is :meth:`mark`).
        self.outcomes: Outcomes | None = None
        self.scheduler = Scheduler(config.concurrency.ordering)
        self._offsets: dict[int, PartitionOffsets] = {}
        #: Per assigned partition, its committed offset and the offsets its metadata says finished above it.
        self._committed: dict[int, tuple[int, set[int]]] = {}
        self._changed: set[int] = set()
        self._paused: set[int] = set()
        self.resume: Resume = resume_on_client  # the consumer sets the operator's pause (engine/control.py)
        self._lock = threading.Lock()  # the trackers, _changed and the summary's counters
        self._deciding = threading.Lock()  # the failure policy (its circuit breaker) and what carries it out
        self._room = Room()
        self._threads: list[threading.Thread] = []
        #: Seconds each worker spent in receivers (each worker adds to its own entry: no lock).
        self._busy = [0.0] * config.concurrency.concurrency
        self._store_at = 0.0
        #: The error a worker stopped on; the loop raises it after the batch.
        self.fatal: BaseException | None = None

    # -- the loop thread -------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker threads."""
        for index in range(self._config.concurrency.concurrency):
            thread = threading.Thread(
                target=self._work, args=(index,), name=f"kafka-consumer-worker-{index + 1}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def take_in(self, client: Consumer, raw: KafkaMessage) -> None:
        """A fetched message: note its offset and queue it, unless it finished before (per the metadata)."""
        location = locate(raw)
        partition = location.partition
        with self._lock:
            tracker = self._offsets.get(partition)
            if tracker is None:
                tracker = self._offsets[partition] = self._tracker(partition, location.offset)
            if not tracker.take(location.offset):
                self._changed.add(partition)  # finished before the last commit: nothing runs, the watermark moves
                return
            spread = tracker.span
        self._queue(raw, location)
        if partition not in self._paused and self._full(partition, spread) and not self._make_room(partition, spread):
            self._pause(client, partition)

    def take_in_all(self, client: Consumer, raws: Sequence[KafkaMessage]) -> None:
        """The fetched messages of one poll (none an error), in the order fetched."""
        for raw in raws:
            self.take_in(client, raw)

    def after_batch(self, client: Consumer) -> None:
        """Raise a worker's fatal error; resume partitions that caught up; store the watermarks."""
        if self.fatal is not None:
            raise self.fatal
        now = time.monotonic()
        if now >= self._store_at:  # the metadata's encoding costs up to a millisecond: not after every batch
            self._store_at = now + STORE_INTERVAL
            self.store(client)
        for partition in list(self._paused):
            with self._lock:
                tracker = self._offsets.get(partition)
                spread = tracker.span if tracker is not None else 0
            if self._backlog(partition) <= self._config.concurrency.max_queued // 2 and not self._full(
                partition, spread, queued=False
            ):
                self._resume(client, partition)

    def poll_timeout(self, timeout: float) -> float:
        """How long the loop's poll may wait: briefly while a partition is paused, so it resumes in time."""
        return min(timeout, PAUSED_POLL_TIMEOUT) if self._paused else timeout

    def busy(self) -> bool:
        """Whether messages are queued, running or waiting for a retry (the consumer is not idle)."""
        return any(self.scheduler.snapshot().values())

    def state(self) -> WorkersState:
        """What the workers are doing now."""
        with self._lock:
            behind = {
                number: tracker.highest_finished - tracker.watermark + 1
                for number, tracker in self._offsets.items()
                if tracker.highest_finished is not None and tracker.highest_finished >= tracker.watermark
            }
        return WorkersState(
            threads=len(self._busy),
            in_flight=self.scheduler.running(),
            queued=self.scheduler.snapshot(),
            behind=behind,
            busy_seconds=sum(self._busy),
            paused=frozenset(self._paused),
        )

    def store(self, client: Consumer) -> None:
        """Store the watermark and metadata of every partition whose watermark may have moved."""
        offsets = self._positions(only_changed=True)
        if not offsets:
            return
        try:
            client.store_offsets(offsets=offsets)
        except KafkaException as error:
            logger.warning("Could not store the offsets of %s (%s).", self._config.kafka_topic, error)

    def offsets(self) -> list[TopicPartition]:
        """The watermark and metadata of every partition with messages, for a synchronous commit."""
        return self._positions(only_changed=False)

    def assigned(self, client: Consumer, partitions: Sequence[TopicPartition]) -> None:
        """Read the committed offsets of newly assigned partitions, and the finished offsets in their metadata."""
        try:
            committed = client.committed(list(partitions), timeout=self._config.connect_timeout)
        except KafkaException as error:
            logger.warning("Could not read the committed offsets of %s (%s); none is skipped.", partitions, error)
            return
        for position in committed:
            if position.offset >= 0:
                finished = decode_metadata(position.offset, position.metadata)
                self._committed[position.partition] = (position.offset, finished)

    def revoking(self, client: Consumer, partitions: Sequence[TopicPartition]) -> None:
        """
        Drop the revoked partitions' queued messages, let their in-flight ones finish (for a while), and
        store the watermarks: librdkafka commits the stored offsets of revoked partitions itself, after the
        consumer's commit, so they must be the same offsets and metadata.
        """
        numbers = {partition.partition for partition in partitions}
        self.scheduler.revoke(numbers)
        # After a fatal error (a Stop) the failed message stays running in the scheduler: nothing to wait for.
        if self.fatal is None and not self.scheduler.wait_for_running(numbers, REVOKE_DRAIN_TIMEOUT):
            logger.warning(
                "Messages of revoked partitions %s of %s still running after %.0fs; their offsets are not "
                "committed, so their next owners handle them again.",
                sorted(numbers),
                self._config.kafka_topic,
                REVOKE_DRAIN_TIMEOUT,
            )
        self.store(client)

    def forget(self, partitions: Sequence[TopicPartition]) -> None:
        """The partitions are gone (revoked after the commit, or lost): drop their queue and offsets."""
        numbers = {partition.partition for partition in partitions}
        self.scheduler.revoke(numbers)
        with self._lock:
            for number in numbers:
                self._offsets.pop(number, None)
                self._committed.pop(number, None)
                self._changed.discard(number)
                self._paused.discard(number)

    def stop(self) -> bool:
        """
        Take nothing new; let the in-flight messages finish; return whether they did.

        They may run as long as the sequential engine's message in hand may, ``HANDLER_HARD_TIMEOUT``
        (the watchdog ends the process then), so the manifests' grace period covers them too.
        """
        self.scheduler.close()
        timeout = self._config.failure.hard_timeout
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [thread.name for thread in self._threads if thread.is_alive()]
        if stuck:
            logger.warning(
                "Receivers still running on %s after %.0fs; their messages are not committed and will be redelivered.",
                ", ".join(stuck),
                timeout,
            )
        return not stuck

    def mark(self, partition: int, raw: KafkaMessage) -> None:
        """``raw`` finished (handled, parked or skipped): its offset counts for the watermark."""
        self.mark_all(partition, (raw,))

    def mark_all(self, partition: int, raws: Sequence[KafkaMessage]) -> None:
        """Messages of one partition finished: their offsets count for the watermark."""
        with self._lock:
            tracker = self._offsets.get(partition)
            if tracker is None:
                return  # the partition was revoked or lost meanwhile: its next owner handles the messages
            for raw in raws:
                if (offset := raw.offset()) is not None:
                    tracker.finish(offset)
                    self._progress.stored()
            self._changed.add(partition)
            unfinished = tracker.unfinished
        self._room.finished(partition, unfinished)

    def _make_room(self, partition: int, spread: int) -> bool:
        """Wait up to ROOM_WAIT for the workers to bring the partition to 3/4 of MAX_QUEUED; whether they did."""
        bound = self._config.concurrency.max_queued
        if spread >= SPAN_FACTOR * bound:
            return False
        return self._room.wait(partition, bound - max(1, bound // 4), lambda: self._backlog(partition))

    def _full(self, partition: int, spread: int, queued: bool = True) -> bool:
        """
        Whether the partition must pause: ``MAX_QUEUED`` messages unfinished, or its watermark that far
        behind the newest offset taken (a retrying key holds the watermark while the other keys finish, and
        the finished offsets above it must stay few enough to encode and to keep).
        """
        bound = self._config.concurrency.max_queued
        return (queued and self._backlog(partition) >= bound) or spread >= SPAN_FACTOR * bound

    # Extension points of the batch workers (engine/batches.py): how a message is queued, what counts as backlog.

    def _queue(self, raw: KafkaMessage, location: Location) -> None:
        """Queue a message taken in (loop thread)."""
        self.scheduler.put(Work(location.partition, location.offset, raw.key(), Job(raw, location)))

    def _backlog(self, partition: int) -> int:
        """The partition's messages taken in and not finished, for backpressure."""
        return self.scheduler.queued(partition)

    def _tracker(self, partition: int, first: int) -> PartitionOffsets:
        committed = self._committed.pop(partition, None)
        finished = committed[1] if committed is not None and committed[0] <= first else set()
        return PartitionOffsets(first, {offset for offset in finished if offset >= first})

    def _positions(self, only_changed: bool) -> list[TopicPartition]:
        topic = self._config.kafka_topic
        with self._lock:
            numbers = list(self._changed) if only_changed else list(self._offsets)
            self._changed.clear()
            trackers = [(number, self._offsets[number]) for number in numbers if number in self._offsets]
            return [TopicPartition(topic, number, t.watermark, metadata=t.metadata()) for number, t in trackers]

    def _pause(self, client: Consumer, partition: int) -> None:
        client.pause([TopicPartition(self._config.kafka_topic, partition)])
        self._paused.add(partition)

    def _resume(self, client: Consumer, partition: int) -> None:
        self.resume(client, [TopicPartition(self._config.kafka_topic, partition)])
        self._paused.discard(partition)

    # -- a worker thread -------------------------------------------------------------------

    def _work(self, index: int) -> None:
        """A worker thread: run messages until the scheduler closes or a message is fatal."""
        slot = self._watchdog.slot()
        close_old_connections = OldConnectionCloser()
        busy = self._busy
        try:
            while self.fatal is None:
                work = self.scheduler.take(WORKER_WAIT)
                if work is None:
                    if self.scheduler.closed:
                        return
                    continue
                started = time.perf_counter()
                self._run(work, slot, close_old_connections)
                busy[index] += time.perf_counter() - started
        except BaseException as error:  # a bug or a fatal decision: the loop raises it after its batch
            self.fatal = self.fatal or error
        finally:
            connections.close_all()  # this thread's connections

    def _run(self, work: Work, slot: WatchSlot, close_old_connections: OldConnectionCloser) -> None:
        job: Job = work.payload
        if job.failures is None and hold_back(self.scheduler, work, self._policy.outage):
            return
        close_old_connections()
        try:
            result = self._delivery.attempt(job.raw, job.location, job.failures, slot)
        except DeserializationError as error:
            malformed: DeserializationError | None = error
        else:
            malformed = result.malformed()
        finally:
            close_old_connections()
        if malformed is not None:
            self._carry_out(work, job, self._decide(lambda: self._policy.decide_malformed(malformed)))
            return
        if result.ok:
            with self._deciding:
                self._policy.record_success()
            self.mark(job.location.partition, job.raw)
            self.scheduler.done(work)
            with self._lock:
                self._summary.handled += 1
            if "after_message" in self._emitter.wanted:
                self._emitter.emit("after_message", job.raw, HANDLED)
            return
        decision = self._decide(lambda: self._policy.decide(result.failures, job.attempts_made + 1))
        self._carry_out(work, job, decision)

    def _decide(self, decide: Callable[[], Decision]) -> Decision:
        with self._deciding:
            return decide()

    def _carry_out(self, work: Work, job: Job, decision: Decision) -> None:
        """Retry later (holding back only the message's key), or park, skip or stop as the policy decided."""
        outcomes = self.outcomes
        assert outcomes is not None, "the consumer sets the outcomes before it starts the workers"
        if isinstance(decision, Retry):
            job.attempts_made, job.failures = decision.attempts_made, decision.failures
            with self._deciding:
                outcomes.retrying(job.raw, decision, _HOLDS_BACK[self._config.concurrency.ordering])
            # False when the partition was revoked meanwhile: its next owner fetches the message again.
            self.scheduler.retry_at(work, time.monotonic() + decision.delay)
            return
        with self._deciding:  # parks one at a time: the dead-letter producer waits for each write
            outcomes.carry_out(None, job.raw, decision)  # raises for a Stop: fatal, and the message unfinished
        self.scheduler.done(work)


#: What a retry holds back, per ORDERING, as the retry's log line says it.
_HOLDS_BACK = {
    "partition": "holding back its partition meanwhile",
    "key": "holding back the messages of its key meanwhile",
    "none": "with the other messages going on meanwhile",
}
