"""
EventConsumer: the poll loop for one topic, with at-least-once offsets.

The loop is a few named steps: poll, handle (deserialize and dispatch), mark the offset,
store the batch's offsets, report progress. Offsets are stored only after every receiver
returned (``enable.auto.offset.store=false``), once per partition per batch (ADR 7);
librdkafka commits stored offsets in the background,
and :class:`~kafka_consumer_app.engine.commits.Commits` commits them synchronously when
partitions are revoked and on shutdown. See docs/decisions/0001-offset-strategy.rst.

The consumer holds its collaborators and the loop, nothing more: the client and its errors
(:mod:`~kafka_consumer_app.engine.client`), the topic's existence
(:mod:`~kafka_consumer_app.engine.topic_watch`), offsets and rebalances
(:mod:`~kafka_consumer_app.engine.commits`, :mod:`~kafka_consumer_app.engine.rebalance`), the
failure policy and what carries its decisions out (:mod:`~kafka_consumer_app.engine.policy`,
:mod:`~kafka_consumer_app.engine.outcomes`), and progress (:mod:`~kafka_consumer_app.engine.progress`).
None of them calls back into the consumer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage
from django.db import close_old_connections

from kafka_consumer_app.engine.batch_dispatch import BatchDispatcher, receivers_kind, require_receivers
from kafka_consumer_app.engine.batches import BatchWorkers
from kafka_consumer_app.engine.client import ClientErrorHandler, client_config, log_client_config, new_client
from kafka_consumer_app.engine.commits import Commits
from kafka_consumer_app.engine.control import OperatorPause
from kafka_consumer_app.engine.db import OldConnectionCloser
from kafka_consumer_app.engine.dead_letters import DeadLetterProducer
from kafka_consumer_app.engine.delivery import Delivery
from kafka_consumer_app.engine.dispatch import Dispatcher, DispatchResult
from kafka_consumer_app.engine.hooks import HANDLED, ConsumerHooks, HookEmitter
from kafka_consumer_app.engine.offsets import OffsetReset
from kafka_consumer_app.engine.outages import DatabaseOutage
from kafka_consumer_app.engine.outcomes import Outcomes
from kafka_consumer_app.engine.policy import FailurePolicy
from kafka_consumer_app.engine.positions import DatabasePositions
from kafka_consumer_app.engine.progress import Progress, RunSummary
from kafka_consumer_app.engine.rebalance import Rebalancing, commit_reset, log_reset_committed
from kafka_consumer_app.engine.records import MessageConverter, locate
from kafka_consumer_app.engine.retries import PendingRetry, RetryScheduler
from kafka_consumer_app.engine.shutdown import StopRequest
from kafka_consumer_app.engine.topic_watch import TopicWatch, check_dead_letter_topic
from kafka_consumer_app.engine.watchdog import Watchdog
from kafka_consumer_app.engine.workers import Workers
from kafka_consumer_app.exceptions import ConfigurationError, DeserializationError
from kafka_consumer_app.settings.topics import TopicConfig
from kafka_consumer_app.validation import first_problem, positive_int_problem, seconds_problem

logger = logging.getLogger(__name__)

#: How many already-fetched messages one consume() call takes: enough to spread the call's cost,
#: few enough that a stop request or a rebalance waits for nothing.
BATCH_SIZE = 100

#: Between the messages of a batch, how often the ``after_poll`` hooks hear that the loop is alive (seconds).
BEAT_INTERVAL = 0.1

__all__ = ["BATCH_SIZE", "EventConsumer", "RunOptions", "RunSummary"]


@dataclass(frozen=True)
class RunOptions:
    """How long ``run()`` goes on: until a stop request, or a message count or idle time."""

    max_messages: int | None = None
    idle_timeout: float | None = None
    allow_no_handlers: bool = False
    #: A one-time rewind of the group, applied at the first assignment (--from-beginning, --offset-time).
    reset: OffsetReset | None = None

    def __post_init__(self) -> None:
        # call_command() passes options without argparse's checks, so the limits are checked here too.
        problem = first_problem(
            {
                "--max-messages": (self.max_messages, positive_int_problem),
                "--idle-timeout": (self.idle_timeout, seconds_problem),
            }
        )
        if problem:
            raise ConfigurationError(problem)


class EventConsumer:
    """
    Consumes one topic in one consumer group and hands each message to its signal receivers.

    ``run()`` returns normally on a clean stop (a stop request, ``max_messages`` or
    ``idle_timeout``) and raises a :class:`KafkaConsumerAppError` for anything fatal.
    """

    def __init__(
        self,
        config: TopicConfig,
        options: RunOptions | None = None,
        stop: StopRequest | None = None,
        hooks: Sequence[ConsumerHooks] = (),
    ) -> None:
        self.config = config
        self.options = options or RunOptions()
        self.stop = stop or StopRequest()
        self.hooks = list(hooks)
        self.emitter = HookEmitter(self.hooks, self)
        emit = self.emitter.emit
        self._close_old_connections: Callable[[], None] = close_old_connections  # bound per thread in run()
        self.dispatcher = Dispatcher(
            config.topic,
            sender=EventConsumer,
            more_receivers=_value_signal_receivers(config),
            timed=self.emitter.wants("after_receiver"),
        )
        self.summary = RunSummary()
        self.progress = Progress(config, self.summary, emit)
        self.delivery = Delivery(MessageConverter(config), self.dispatcher, self.emitter)
        self.outage = DatabaseOutage(config.outage, emit)
        self.progress.outage_state = self.outage.state
        self.policy = FailurePolicy(config.failure, can_park=False, outage=self.outage)  # parks after run()
        self.control = OperatorPause(config, emit)  # the admin's Pause: holds back the retries' and workers' resumes
        self.retries = RetryScheduler(config.kafka_topic, lambda: self.outage.active, self.control.resume)
        self.control.holders.append(self.retries.paused_partitions)
        self.progress.control_state = lambda: self.control.state
        self.commits = Commits(config, emit, self.progress)
        self.watchdog = Watchdog(
            config.failure.soft_timeout, config.failure.hard_timeout, on_stall=self.commits.commit_before_exit
        )
        self.topic_watch = TopicWatch(config, emit)
        self.client_errors = ClientErrorHandler(config, on_missing_topic=self.topic_watch.check_soon)
        #: OFFSET_STORE "database": the positions table, written in the receivers' transaction; else None.
        self.positions = DatabasePositions(config) if config.offsets.in_database else None
        self.delivery.positions = self.positions
        self.rebalance = Rebalancing(config, self.options.reset, self.commits, self.retries, emit, self.positions)
        self.rebalance.control = self.control
        self.outcomes = Outcomes(config, self.retries, self.summary, emit, self._given_up(self.commits.mark))
        #: The receivers of batch_signal(topic): a topic that has any runs on the workers, at any CONCURRENCY.
        self.batches = BatchDispatcher(config.topic, sender=EventConsumer, timed=self.emitter.wants("after_receiver"))
        #: The worker threads (CONCURRENCY above 1, or batch receivers); None runs every message on the loop's thread.
        self.workers = (
            self._make_workers() if config.concurrency.concurrency > 1 or self.batches.has_receivers() else None
        )
        self._last_message_at = time.monotonic()
        self._workers_reported_at = 0.0

    def _make_workers(self) -> Workers:
        """The workers, wired in: they finish offsets, the commits commit their watermarks, rebalances drain them."""
        parts = (self.config, self.delivery, self.policy, self.summary, self.progress, self.watchdog)
        workers = BatchWorkers(self.batches, *parts) if self.batches.has_receivers() else Workers(*parts)
        given_up = self._given_up(workers.mark)
        self.outcomes = Outcomes(self.config, self.retries, self.summary, self.emitter.emit, given_up)
        workers.outcomes = self.outcomes
        self.commits.offsets_to_commit = workers.offsets
        self.rebalance.work = workers
        workers.resume = self.control.resume
        self.control.holders.append(lambda: workers.state().paused)
        self.progress.workers_state = workers.state
        return workers

    def _given_up(self, mark: Callable[[int, KafkaMessage], None]) -> Callable[[int, KafkaMessage], None]:
        """How a parked or skipped message is marked: with the database store, its row moves past it first."""
        return mark if self.positions is None else self.positions.given_up(mark)

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Consume until a clean stop; raise KafkaConsumerAppError on anything fatal."""
        self._require_receivers()
        client = self.commits.client = new_client(self.client_config())
        try:
            # Inside the try: a producer or a hook that cannot start (a health port in use) still gets
            # the cleanup below.
            self._start(client)
            while not self._should_stop():
                self._poll_once(client)
            self._drain(client)
            self.commits.commit_on_shutdown(client)
        finally:
            self._drain(client)
            self.commits.store_marked(client)  # a batch cut short by an error: what it handled still counts
            self.emitter.emit("after_stop")
            self.watchdog.stop()
            self._close(client)
        self.progress.log_stopped()
        return self.summary

    def client_config(self) -> dict[str, Any]:
        """The librdkafka configuration: the user's pass-through options plus the managed ones."""
        # The statistics (every 15 s unless the user set statistics.interval.ms) give the progress line its lag.
        return client_config(self.config, self.client_errors.on_error, self.progress.on_stats)

    def reset_only(self) -> list[TopicPartition]:
        """Commit the reset positions of every partition for the group, without consuming; return them."""
        reset = self.options.reset
        assert reset is not None
        client = Consumer(self.client_config())
        try:
            self.topic_watch.wait_for_topic(client, self.client_errors.errors, self.stop.is_set)
            positions = commit_reset(client, self.config, reset)
            if self.positions is not None:
                self.positions.move_to(positions)
        finally:
            client.close()
        log_reset_committed(self.config, reset, positions)
        return positions

    def _require_receivers(self) -> None:
        per_message, batches = self.dispatcher.has_receivers(), self.batches.has_receivers()
        require_receivers(self.config.topic, per_message, batches, self.options.allow_no_handlers)
        if self.positions is not None:
            self.positions.check_table()

    def _start(self, client: Consumer) -> None:
        """Start the producer, the watchdog and the hooks; wait for the topic; subscribe."""
        failure = self.config.failure
        if failure.policy == "dead-letter":
            self.outcomes.dead_letters = DeadLetterProducer(self.config)
            self.policy.can_park = True
        self.watchdog.start()
        if self.workers is not None:
            self.workers.start()
        self._close_old_connections = OldConnectionCloser()
        self.emitter.emit("before_start")
        self.topic_watch.wait_for_topic(client, self.client_errors.errors, self.stop.is_set)
        if self.outcomes.dead_letters is not None and failure.dead_letter_topic and not self.stop.is_set():
            check_dead_letter_topic(client, failure.dead_letter_topic)
        rebalance = self.rebalance
        client.subscribe(
            [self.config.kafka_topic],
            on_assign=rebalance.on_assign,
            on_revoke=rebalance.on_revoke,
            on_lost=rebalance.on_lost,
        )
        self._log_startup()
        self._last_message_at = time.monotonic()
        self.progress.restart()

    def _log_startup(self) -> None:
        logger.info(
            "Consuming topic %s as group %s from %s (receivers: %s); offsets are committed after handling.",
            self.config.kafka_topic,
            self.config.group_id,
            self.config.bootstrap_servers,
            receivers_kind(self.dispatcher.has_receivers(), self.batches.has_receivers()),
        )
        log_client_config(self.client_config())

    def _close(self, client: Consumer) -> None:
        self.commits.client = None
        try:
            client.close()
        except (KafkaException, RuntimeError) as error:
            logger.warning("Closing the Kafka client failed (%s); the group will evict this member by timeout.", error)
        if self.outcomes.dead_letters is not None:
            self.outcomes.dead_letters.close()

    # -- the loop --------------------------------------------------------------------------

    def _should_stop(self) -> bool:
        options, summary = self.options, self.summary
        if self.stop.is_set():
            summary.stop_reason = f"stop requested ({self.stop.reason})"
        elif options.max_messages is not None and summary.processed >= options.max_messages:
            summary.stop_reason = f"--max-messages {options.max_messages} reached"
        elif options.idle_timeout is not None and self._idle_for() >= options.idle_timeout and not self._busy():
            summary.stop_reason = f"no message for --idle-timeout {options.idle_timeout:g}s"
        else:
            return False
        return True

    def _busy(self) -> bool:
        """Whether the database is out, or workers have messages queued, running or retrying: not idle, then."""
        return self.outage.active or (self.workers is not None and self.workers.busy())

    def _idle_for(self) -> float:
        """Seconds since the latest message or assignment; 0 until the group first assigned partitions."""
        if not self.rebalance.assigned:
            return 0.0
        return time.monotonic() - max(self._last_message_at, self.rebalance.assigned_at)

    def _drain(self, client: Consumer) -> None:
        """With workers: take nothing new, let the in-flight messages finish, store their watermarks."""
        if self.workers is not None:
            self.workers.stop()
            self.workers.store(client)

    def _poll_once(self, client: Consumer) -> None:
        """Take what is already fetched, up to BATCH_SIZE messages, or wait up to POLL_TIMEOUT for one."""
        if self.workers is not None:
            self._take_in(client, self.workers)
            return
        batch = self._poll(client)
        between = self.emitter.wants("after_poll")
        beat_at = time.monotonic() + BEAT_INTERVAL
        for index, raw in enumerate(batch):
            if index:
                if between and time.monotonic() >= beat_at:
                    beat_at = time.monotonic() + BEAT_INTERVAL
                    self.emitter.emit("after_poll")
                # A stop or a limit takes effect between messages; the rest of the batch is not
                # stored, so whoever consumes those partitions next fetches it again.
                if self._should_stop():
                    break
            error = raw.error()
            if error is not None:
                self.client_errors.on_message_error(error)
                continue
            self._handle(client, raw)
        # One store per partition for the whole batch, of the latest message handled or parked in it.
        self.commits.store_marked(client)
        self.progress.report()
        self.topic_watch.check_still_exists(client)

    def _take_in(self, client: Consumer, workers: Workers) -> None:
        """With workers: hand what is fetched to them; pause, resume and store offsets as they go."""
        batch = self._poll(client)
        if any(raw.error() is not None for raw in batch):
            for raw in batch:
                if (error := raw.error()) is not None:
                    self.client_errors.on_message_error(error)
            batch = [raw for raw in batch if raw.error() is None]
        workers.take_in_all(client, batch)
        workers.after_batch(client)
        if "after_workers" in self.emitter.wanted and time.monotonic() >= self._workers_reported_at + 1.0:
            self._workers_reported_at = time.monotonic()
            self.emitter.emit("after_workers", workers.state())
        self.progress.report()
        self.topic_watch.check_still_exists(client)

    def _poll(self, client: Consumer) -> list[KafkaMessage]:
        """Apply the operator's pause, resume due retries, fetch; the ``after_poll`` heartbeat; raise a fatal error."""
        self.control.check(client)
        self.retries.resume_due(client)
        batch = client.consume(BATCH_SIZE, 0)
        if not batch:
            timeout = self.retries.poll_timeout(self.config.poll_timeout)
            raw = client.poll(self.workers.poll_timeout(timeout) if self.workers is not None else timeout)
            batch = [] if raw is None else [raw]
        self.emitter.emit("after_poll")
        self.client_errors.raise_if_fatal()
        if batch:
            self._last_message_at = time.monotonic()
        return batch

    def _handle(self, client: Consumer, raw: KafkaMessage) -> None:
        """Deserialize and dispatch one message, then mark its offset for storing if every receiver returned."""
        location = locate(raw)
        pending = self.retries.pending(location.partition)
        if pending is not None and (location.offset != pending.offset or not pending.resumed):
            # Fetched before the partition was rewound; it comes again after the message being retried.
            client.seek(TopicPartition(location.topic, location.partition, pending.offset))
            return
        self._close_old_connections()
        try:
            result = self.delivery.attempt(raw, location, pending.failures if pending else None, self.watchdog)
        except DeserializationError as error:
            self.outcomes.carry_out(client, raw, self.policy.decide_malformed(error))
            return
        finally:
            self._close_old_connections()
        if not result.ok:
            self._failed(client, raw, result, pending)
            return
        if pending is not None:
            self.retries.finish(location.partition)
        self.policy.record_success()
        self.commits.mark(location.partition, raw)
        self.summary.handled += 1
        if "after_message" in self.emitter.wanted:
            self.emitter.emit("after_message", raw, HANDLED)

    def _failed(
        self, client: Consumer, raw: KafkaMessage, result: DispatchResult, pending: PendingRetry | None
    ) -> None:
        """Carry out what the policy decides for a message a receiver failed on."""
        malformed = result.malformed()
        if malformed is not None:
            # A receiver read a key that cannot be decoded: the message is malformed, as with its value.
            decision = self.policy.decide_malformed(malformed)
        else:
            decision = self.policy.decide(result.failures, (pending.attempts_made if pending else 0) + 1)
        self.outcomes.carry_out(client, raw, decision)


def _value_signal_receivers(config: TopicConfig) -> Callable[[], bool] | None:
    """For an Open edX topic, whether any OpenEdxPublicSignal has a receiver; None for other topics."""
    if not config.openedx_events:
        return None
    from kafka_consumer_app.engine.openedx import any_openedx_receivers  # needs the openedx extra

    return any_openedx_receivers
