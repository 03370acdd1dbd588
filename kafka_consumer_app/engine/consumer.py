"""
EventConsumer: the poll loop for one topic, with at-least-once offsets.

The loop is a few named steps: poll, handle (deserialize and dispatch), store the offset,
report progress. Offsets are stored only after every receiver returned
(``enable.auto.offset.store=false``); librdkafka commits stored offsets in the background,
and this class commits them synchronously when partitions are revoked and on shutdown.
See docs/decisions/0001-offset-strategy.rst.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage
from django.db import close_old_connections

from kafka_consumer_app.client_errors import ClientErrors, wait_for_metadata
from kafka_consumer_app.engine.db import OldConnectionCloser
from kafka_consumer_app.engine.dispatch import Dispatcher, DispatchResult
from kafka_consumer_app.engine.failures import (
    REASON_MALFORMED,
    CircuitBreaker,
    DeadLetterProducer,
    FailureReport,
    PendingRetry,
    RetryPolicy,
    RetryScheduler,
)
from kafka_consumer_app.engine.hooks import (
    DEAD_LETTERED,
    FAILED,
    HANDLED,
    HOOK_POINTS,
    RETRIED,
    SKIPPED,
    ConsumerHooks,
    around_dispatch,
    overriding,
)
from kafka_consumer_app.engine.offsets import OffsetReset, reset_positions
from kafka_consumer_app.engine.shutdown import StopRequest
from kafka_consumer_app.engine.stats import total_lag
from kafka_consumer_app.engine.watchdog import Watchdog
from kafka_consumer_app.exceptions import (
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    DeserializationError,
    FatalKafkaError,
    MessageFailedError,
    TopicNotFoundError,
)
from kafka_consumer_app.message import Message, decode_event_type, to_datetime
from kafka_consumer_app.redaction import redact_text, redacted, secret_values
from kafka_consumer_app.serialization import deserialize, get_deserializer
from kafka_consumer_app.settings.topics import TopicConfig
from kafka_consumer_app.validation import first_problem, positive_int_problem, seconds_problem

logger = logging.getLogger(__name__)
librdkafka_logger = logging.getLogger("kafka_consumer_app.librdkafka")

#: While all brokers are down librdkafka reports an error per reconnect attempt; one line per this many seconds.
UNREACHABLE_LOG_INTERVAL = 30.0
#: How many already-fetched messages one consume() call takes: enough to spread the call's cost,
#: few enough that a stop request or a rebalance waits for nothing.
BATCH_SIZE = 100

#: Commit errors that mean the group is rebalancing: the same commit succeeds once the rebalance settles
#: (the broker refuses commits between JoinGroup and SyncGroup, and commits of a generation it just replaced).
REBALANCE_COMMIT_ERRORS = frozenset(
    {KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID}
)
#: On shutdown, how long the consumer keeps serving the group (handling nothing) for a rebalance to settle
#: before its final commit. A rebalance of live members takes about one heartbeat.interval.ms (3 s by
#: default) per round, two rounds with cooperative-sticky; 15 s of Kubernetes' default 30 s grace period
#: leaves the rest for the message in hand and close().
SHUTDOWN_SETTLE_TIMEOUT = 15.0
#: In the revoke callback (which cannot poll), how long a commit refused by a rebalance is tried again.
REVOKE_COMMIT_TIMEOUT = 3.0
#: Pause between two tries of a commit refused by a rebalance.
COMMIT_RETRY_INTERVAL = 0.2

#: Errors that mean the client lost the cluster for a while; librdkafka reconnects on its own.
TRANSIENT_ERRORS = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE})
#: Errors that say the consumed topic may be gone; a metadata check decides.
MISSING_TOPIC_ERRORS = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION}
)
#: librdkafka notices a deleted topic only on a metadata refresh (topic.metadata.refresh.interval.ms,
#: 5 min), so the loop asks for the topic's metadata itself this often: one small request.
TOPIC_CHECK_INTERVAL = 10.0
#: A first "unknown topic" answer fails readiness; a second one this much later confirms the deletion,
#: so a topic briefly missing from one broker's metadata (while it is being created) is not taken for it.
DELETION_CONFIRM_DELAY = 5.0
#: The longest a topic check may hold up the loop when no broker answers (then nothing is concluded).
TOPIC_CHECK_TIMEOUT = 2.0


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


@dataclass
class RunSummary:
    """What one ``run()`` did, for the caller's last log line and for tests."""

    #: Messages whose offsets were stored: handled, dead-lettered or skipped.
    processed: int = 0
    handled: int = 0
    retried: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    stop_reason: str = ""


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
    ):
        self.config = config
        self.options = options or RunOptions()
        self.stop = stop or StopRequest()
        self.hooks = list(hooks)
        # Per hook point, only the hooks that implement it: points nobody implements cost nothing.
        self._hooked = {name: overriding(self.hooks, name) for name in HOOK_POINTS}
        self._close_old_connections: Callable[[], None] = close_old_connections  # bound per thread in run()
        self.dispatcher = Dispatcher(config.topic, sender=EventConsumer, more_receivers=_value_signal_receivers(config))
        self.summary = RunSummary()
        self._value_deserializer = get_deserializer(config.deserializer)
        self._key_deserializer = get_deserializer(config.key_deserializer)
        failure = config.failure
        self.retry_policy = RetryPolicy(failure.retry)
        self.retries = RetryScheduler(config.kafka_topic)
        self.breaker = CircuitBreaker(failure.circuit_breaker)
        self.watchdog = Watchdog(failure.soft_timeout, failure.hard_timeout, on_stall=self._commit_before_exit)
        self._dead_letters: DeadLetterProducer | None = None
        self._client: Consumer | None = None
        self._unreachable_logged_at = -UNREACHABLE_LOG_INTERVAL
        self._unreachable_count = 0
        self._errors = ClientErrors()
        self._topic_check_at = time.monotonic() + TOPIC_CHECK_INTERVAL
        self._topic_missing_since: float | None = None  # when a broker first said the topic does not exist
        self._last_message_at = time.monotonic()
        self._assigned = False  # the --idle-timeout clock runs only once the group assigned partitions
        self._reset_pending = self.options.reset is not None
        self._progress_at = time.monotonic()
        self._progress_count = 0
        self._latest_stats: dict[str, Any] | None = None  # librdkafka's latest statistics, when enabled

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Consume until a clean stop; raise KafkaConsumerAppError on anything fatal."""
        self._require_receivers()
        client = self._client = self._new_client()
        try:
            # Inside the try: a producer or a hook that cannot start (a health port in use) still gets
            # the cleanup below.
            if self.config.failure.policy == "dead-letter":
                self._dead_letters = DeadLetterProducer(self.config)
            self.watchdog.start()
            self._close_old_connections = OldConnectionCloser()
            self._emit("before_start")
            self._wait_for_topic(client)
            self._check_dead_letter_topic(client)
            client.subscribe(
                [self.config.kafka_topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )
            self._log_startup()
            self._last_message_at = self._progress_at = time.monotonic()
            while not self._should_stop():
                self._poll_once(client)
            self._commit_on_shutdown(client)
        finally:
            self._emit("after_stop")
            self.watchdog.stop()
            self._close(client)
        logger.info(
            "Stopped consuming %s (group %s) after %d messages (%d dead-lettered, %d skipped): %s.",
            self.config.kafka_topic,
            self.config.group_id,
            self.summary.processed,
            self.summary.dead_lettered,
            self.summary.skipped,
            self.summary.stop_reason,
        )
        return self.summary

    def client_config(self) -> dict[str, Any]:
        """The librdkafka configuration: the user's pass-through options plus the managed ones."""
        # Defaults the user may override: a new group starts at the beginning, and a crash redelivers
        # at most about one second of handled messages (librdkafka's default interval is 5 s).
        config: dict[str, Any] = {"auto.offset.reset": "earliest", "auto.commit.interval.ms": 1000}
        config.update(self.config.consumer_config)
        if config.get("group.protocol") != "consumer":
            # The KIP-848 protocol assigns partitions on the broker and refuses this option.
            config.setdefault("partition.assignment.strategy", "cooperative-sticky")
        config.update(
            {
                "bootstrap.servers": self.config.bootstrap_servers,
                "group.id": self.config.group_id,
                "enable.auto.offset.store": False,
                "enable.auto.commit": True,
                "error_cb": self._on_error,
                "logger": librdkafka_logger,
            }
        )
        if any(hook.wants_statistics for hook in self.hooks):
            config.setdefault("statistics.interval.ms", 15000)
            config["stats_cb"] = self._on_stats
        return config

    def _new_client(self) -> Consumer:
        """Create the librdkafka consumer; options librdkafka refuses are a configuration error, on one line."""
        try:
            return Consumer(self.client_config())
        except KafkaException as error:
            reason = error.args[0].str() if error.args else str(error)
            raise ConfigurationError(
                f"librdkafka refused the configuration ({_without_secrets(reason)}); fix that option in "
                "KAFKA_CONSUMER['CONSUMER_CONFIG']"
            ) from error

    def _require_receivers(self) -> None:
        if self.options.allow_no_handlers or self.dispatcher.has_receivers():
            return
        raise ConfigurationError(
            f"no receiver is connected for topic {self.config.topic!r}, so its messages would be committed "
            f"unhandled; connect one to topic_signal({self.config.topic!r}) in <app>/kafka_handlers.py, "
            "or pass --allow-no-handlers"
        )

    def _wait_for_topic(self, client: Consumer) -> None:
        """Fetch the topic's metadata within CONNECT_TIMEOUT; fail clearly if it cannot be had."""
        metadata = wait_for_metadata(
            client,
            self.config.kafka_topic,
            self.config.bootstrap_servers,
            self.config.connect_timeout,
            self._errors,
            self.stop.is_set,
        )
        if metadata is not None:
            self._check_topic_metadata(metadata)

    def _check_topic_still_exists(self, client: Consumer) -> None:
        """Every TOPIC_CHECK_INTERVAL, ask a broker whether the topic still exists; exit once it confirms not."""
        now = time.monotonic()
        if now < self._topic_check_at:
            return
        self._topic_check_at = now + TOPIC_CHECK_INTERVAL
        try:
            metadata = client.list_topics(self.config.kafka_topic, timeout=TOPIC_CHECK_TIMEOUT)
        except KafkaException:
            return  # no broker answered: an outage is not a deletion, and librdkafka reports it already
        topic = metadata.topics.get(self.config.kafka_topic)
        error = topic.error if topic is not None else None
        if topic is not None and error is None:
            self._topic_found_again()
        elif topic is None or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            self._topic_unknown(client, now)

    def _topic_unknown(self, client: Consumer, now: float) -> None:
        if self._topic_missing_since is None:
            self._topic_missing_since = now
            self._topic_check_at = now + DELETION_CONFIRM_DELAY
            self._emit("after_topic_missing", True)
            logger.warning(
                "Kafka says topic %s (group %s) does not exist; readiness fails, and the consumer exits if it "
                "still does not exist in %.0fs.",
                self.config.kafka_topic,
                self.config.group_id,
                DELETION_CONFIRM_DELAY,
            )
            return
        if now - self._topic_missing_since < DELETION_CONFIRM_DELAY:
            return
        self._commit_handled_before_deletion_exit(client)
        raise TopicNotFoundError(
            f"topic {self.config.kafka_topic!r} was deleted from {self.config.bootstrap_servers} while group "
            f"{self.config.group_id} consumed it; recreate the topic (or remove this consumer), then restart"
        )

    def _topic_found_again(self) -> None:
        if self._topic_missing_since is None:
            return
        self._topic_missing_since = None
        self._emit("after_topic_missing", False)
        logger.info(
            "Topic %s exists after all (group %s); consuming goes on.", self.config.kafka_topic, self.config.group_id
        )

    def _commit_handled_before_deletion_exit(self, client: Consumer) -> None:
        """Commit stored (handled) offsets if the broker still takes them; after a deletion it usually does not."""
        try:
            client.commit(asynchronous=False)
        except KafkaException as error:
            logger.info(
                "Could not commit the last handled offsets of deleted topic %s (group %s): %s; exiting.",
                self.config.kafka_topic,
                self.config.group_id,
                _without_secrets(error.args[0].str() if error.args else str(error)),
            )

    def _check_topic_metadata(self, metadata: Any) -> None:
        topic = metadata.topics.get(self.config.kafka_topic)
        error = topic.error if topic is not None else None
        if topic is None or (error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            raise TopicNotFoundError(
                f"topic {self.config.kafka_topic!r} does not exist on {self.config.bootstrap_servers}; "
                "create it, or check --topic and KAFKA_CONSUMER['TOPIC_PREFIX']"
            )
        if error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            raise AuthenticationError(
                f"not authorized to read topic {self.config.kafka_topic!r}; grant the consumer's principal "
                "READ on the topic and the group"
            )

    def _check_dead_letter_topic(self, client: Consumer) -> None:
        """Warn at startup when the dead-letter topic is missing: parking would then stop the consumer."""
        topic = self.config.failure.dead_letter_topic
        if self._dead_letters is None or topic is None or self.stop.is_set():
            return
        try:
            metadata = client.list_topics(topic, timeout=5)
        except KafkaException:
            return
        found = metadata.topics.get(topic)
        if found is None or (found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            logger.warning(
                "Dead-letter topic %s does not exist: a message that fails its last attempt will stop this "
                "consumer (exit 3, nothing committed) until the topic is created.",
                topic,
            )

    def _log_startup(self) -> None:
        logger.info(
            "Consuming topic %s as group %s from %s (receivers: %s); offsets are committed after handling.",
            self.config.kafka_topic,
            self.config.group_id,
            self.config.bootstrap_servers,
            "topic and event signals" if self.dispatcher.has_receivers() else "none, --allow-no-handlers",
        )
        if logger.isEnabledFor(logging.DEBUG):
            options = {key: value for key, value in redacted(self.client_config()).items() if _printable(value)}
            logger.debug("librdkafka configuration (secrets masked): %s", dict(sorted(options.items())))

    def _close(self, client: Consumer) -> None:
        self._client = None
        try:
            client.close()
        except (KafkaException, RuntimeError) as error:
            logger.warning("Closing the Kafka client failed (%s); the group will evict this member by timeout.", error)
        if self._dead_letters is not None:
            self._dead_letters.close()

    # -- the loop --------------------------------------------------------------------------

    def _should_stop(self) -> bool:
        if self.stop.is_set():
            self.summary.stop_reason = f"stop requested ({self.stop.reason})"
        elif self.options.max_messages is not None and self.summary.processed >= self.options.max_messages:
            self.summary.stop_reason = f"--max-messages {self.options.max_messages} reached"
        elif (
            self.options.idle_timeout is not None
            and self._assigned
            and time.monotonic() - self._last_message_at >= self.options.idle_timeout
        ):
            self.summary.stop_reason = f"no message for --idle-timeout {self.options.idle_timeout:g}s"
        else:
            return False
        return True

    def _poll_once(self, client: Consumer) -> None:
        """Take what is already fetched, up to BATCH_SIZE messages, or wait up to POLL_TIMEOUT for one."""
        self.retries.resume_due(client)
        batch = client.consume(BATCH_SIZE, 0)
        if not batch:
            raw = client.poll(self.retries.poll_timeout(self.config.poll_timeout))
            batch = [] if raw is None else [raw]
        self._emit("after_poll")
        self._raise_if_fatal()
        if batch:
            self._last_message_at = time.monotonic()
        for index, raw in enumerate(batch):
            if index:
                self._emit("after_poll")
                # A stop or a limit takes effect between messages; the rest of the batch is not
                # stored, so whoever consumes those partitions next fetches it again.
                if self._should_stop():
                    break
            error = raw.error()
            if error is not None:
                self._on_message_error(error)
                continue
            self._handle(client, raw)
        self._report_progress()
        self._check_topic_still_exists(client)

    def _handle(self, client: Consumer, raw: KafkaMessage) -> None:
        """Deserialize and dispatch one message, then store its offset if every receiver returned."""
        pending = self.retries.pending(raw.partition())
        if pending is not None and (raw.offset() != pending.offset or not pending.resumed):
            # Fetched before the partition was rewound; it comes again after the message being retried.
            client.seek(TopicPartition(raw.topic(), raw.partition(), pending.offset))
            return
        self._close_old_connections()
        try:
            message = self._to_message(raw)
            if self._hooked["before_message"]:
                self._emit("before_message", message)
            result = self._watched_dispatch(raw, message, pending)
            if self._hooked["after_receiver"]:
                for call in result.calls:
                    self._emit("after_receiver", call.receiver_name, call.seconds, call.error)
        except DeserializationError as error:
            self._give_up(client, raw, FailureReport(REASON_MALFORMED, [error]), counts_for_breaker=False)
            return
        finally:
            self._close_old_connections()
        if not result.ok:
            self._on_failed(client, raw, result, pending)
            return
        if pending is not None:
            self.retries.finish(raw.partition())
        self.breaker.record_success()
        if self._store_offset(client, raw):
            self.summary.handled += 1
            if self._hooked["after_message"]:
                self._emit("after_message", raw, HANDLED)

    def _watched_dispatch(self, raw: KafkaMessage, message: Message, pending: PendingRetry | None) -> DispatchResult:
        """Dispatch under the stall watchdog and inside every hook's ``dispatching`` context."""
        self.watchdog.begin(raw)
        try:
            if not self._hooked["dispatching"]:
                return self._dispatch(message, pending)
            with around_dispatch(self._hooked["dispatching"], self, message):
                return self._dispatch(message, pending)
        finally:
            self.watchdog.end()

    def _dispatch(self, message: Message, pending: PendingRetry | None) -> DispatchResult:
        if pending is None:
            return self.dispatcher.dispatch(message)
        return self.dispatcher.redispatch(message, pending.failures)

    def _to_message(self, raw: KafkaMessage) -> Message:
        headers = tuple(raw.headers() or ())
        topic = raw.topic()
        return Message(
            topic=topic,
            partition=raw.partition(),
            offset=raw.offset(),
            key=deserialize(self._key_deserializer, raw.key(), "key", topic, headers),
            value=deserialize(self._value_deserializer, raw.value(), "value", topic, headers),
            headers=headers,
            timestamp=to_datetime(raw.timestamp()),
            event_type=decode_event_type(headers),
        )

    def _store_offset(self, client: Consumer, raw: KafkaMessage) -> bool:
        try:
            client.store_offsets(message=raw)
        except KafkaException as error:
            # The partition was taken away meanwhile; its new owner will get this message again.
            logger.warning(
                "Could not store offset of %s (%s); the message will be redelivered.", _coordinates(raw), error
            )
            return False
        self.summary.processed += 1
        self._progress_count += 1
        return True

    # -- failures ----------------------------------------------------------------------------

    def _on_failed(
        self, client: Consumer, raw: KafkaMessage, result: DispatchResult, pending: PendingRetry | None
    ) -> None:
        """Schedule a retry of the failed receivers, or give the message up after its last attempt."""
        attempts = (pending.attempts_made if pending else 0) + 1
        errors = [failure.error for failure in result.failures]
        if self.retry_policy.retryable(attempts, errors):
            delay = self.retry_policy.backoff(attempts)
            self.retries.schedule(client, raw, attempts, result.failures, delay)
            self.summary.retried += 1
            self._emit("after_message", raw, RETRIED)
            for failure in result.failures:
                logger.warning(
                    "Receiver %s failed on %s (group %s, attempt %d of %d): %s: %s; will be retried in %.1fs, "
                    "with partition %d paused meanwhile.",
                    failure.receiver_name,
                    _coordinates(raw),
                    self.config.group_id,
                    attempts,
                    self.retry_policy.config.attempts,
                    type(failure.error).__name__,
                    failure.error,
                    delay,
                    raw.partition(),
                )
            return
        for failure in result.failures:
            logger.error(
                "Receiver %s failed on %s (group %s) on attempt %d, its last: %s: %s",
                failure.receiver_name,
                _coordinates(raw),
                self.config.group_id,
                attempts,
                type(failure.error).__name__,
                failure.error,
                exc_info=(type(failure.error), failure.error, failure.error.__traceback__),
            )
        self.retries.finish(raw.partition())
        self._give_up(client, raw, FailureReport.from_failures(result.failures, attempts))

    def _give_up(self, client: Consumer, raw: KafkaMessage, report: FailureReport, counts_for_breaker: bool = True):
        """Apply the failure policy to a message that will not be tried again."""
        where = _coordinates(raw)
        if counts_for_breaker and self.breaker.record_failure():
            self._emit("after_message", raw, FAILED)
            raise CircuitOpenError(
                f"{self.breaker.consecutive} consecutive messages failed (CIRCUIT_BREAKER); {where} was not committed; "
                "the consumer stops so that it restarts once the cause (a database, a service) recovers"
            )
        policy = self.config.failure.policy
        if policy == "stop":
            self._emit("after_message", raw, FAILED)
            raise MessageFailedError(self._stop_line(where, report))
        if policy == "dead-letter" and self._dead_letters is not None:
            try:
                self._dead_letters.park(raw, report)
            except MessageFailedError:
                self._emit("after_message", raw, FAILED)
                raise
            self.summary.dead_lettered += 1
            self._emit("after_message", raw, DEAD_LETTERED)
            logger.warning(
                "Parked %s (group %s) in dead-letter topic %s after %d attempt(s) (%s); moving on.",
                where,
                self.config.group_id,
                self._dead_letters.topic,
                report.attempts,
                report.reason,
            )
        else:
            self.summary.skipped += 1
            self._emit("after_message", raw, SKIPPED)
            logger.error(
                "Skipped %s (group %s) after %d attempt(s) (%s), as FAILURE_POLICY 'skip' says; it is not retried.",
                where,
                self.config.group_id,
                report.attempts,
                report.reason,
            )
        self._store_offset(client, raw)

    def _stop_line(self, where: str, report: FailureReport) -> str:
        if report.reason == REASON_MALFORMED:
            return (
                f"{where} is malformed: {report.errors[0]}; the offset was not committed; "
                f"fix the producer or the topic's DESERIALIZER (now {self.config.deserializer!r})"
            )
        return (
            f"receiver {', '.join(report.receivers)} failed on {where} after {report.attempts} attempt(s); the "
            "offset was not committed, so the message will be redelivered; fix the receiver or its dependencies "
            "and restart"
        )

    def _commit_before_exit(self) -> None:
        """Called by the watchdog thread before it ends a stalled process: commit what was handled."""
        client = self._client
        if client is not None:
            self._commit(client, "stalled receiver")

    def _report_progress(self) -> None:
        now = time.monotonic()
        elapsed = now - self._progress_at
        if elapsed < self.config.progress_interval:
            return
        lag = total_lag(self._latest_stats, self.config.kafka_topic)
        logger.info(
            "Processed %d messages of %s (group %s) in the last %.0fs (%.1f/s), %d since start "
            "(%d handled, %d dead-lettered, %d skipped, %d retries); total lag %s.",
            self._progress_count,
            self.config.kafka_topic,
            self.config.group_id,
            elapsed,
            self._progress_count / elapsed,
            self.summary.processed,
            self.summary.handled,
            self.summary.dead_lettered,
            self.summary.skipped,
            self.summary.retried,
            "unknown" if lag is None else lag,
        )
        self._progress_at = now
        self._progress_count = 0

    # -- offsets and rebalances -------------------------------------------------------------

    def _try_commit(self, client: Consumer) -> KafkaError | None:
        """Commit every stored offset synchronously; return the error, or None (nothing stored is no error)."""
        try:
            client.commit(asynchronous=False)
        except KafkaException as error:
            kafka_error = error.args[0] if error.args else KafkaError(KafkaError._FAIL, str(error))
            if kafka_error.code() == KafkaError._NO_OFFSET:
                return None
            self._emit("after_commit_failed", kafka_error)
            return kafka_error
        return None

    def _commit(self, client: Consumer, why: str) -> bool:
        """Commit every stored offset synchronously; return whether that succeeded, and log a failure."""
        error = self._try_commit(client)
        if error is None:
            return True
        logger.warning(
            "Committing offsets of %s (group %s) on %s failed (%s); messages handled since the last commit "
            "will be handled again by whoever consumes their partitions next.",
            self.config.kafka_topic,
            self.config.group_id,
            why,
            error.str(),
        )
        return False

    def _commit_on_shutdown(self, client: Consumer) -> bool:
        """The final commit; if a rebalance refuses it, serve the group (handling nothing) until it settles."""
        error = self._try_commit(client)
        if error is None:
            return True
        if error.code() in REBALANCE_COMMIT_ERRORS:
            logger.info(
                "Committing offsets of %s (group %s) on shutdown was refused (%s): a rebalance is under way; "
                "handling nothing more and waiting up to %.0fs for it to settle, then committing again.",
                self.config.kafka_topic,
                self.config.group_id,
                error.str(),
                SHUTDOWN_SETTLE_TIMEOUT,
            )
            error = self._commit_after_rebalance(client, time.monotonic() + SHUTDOWN_SETTLE_TIMEOUT)
            if error is None:
                logger.info(
                    "Committed offsets of %s (group %s) on shutdown once the rebalance settled; leaving the group.",
                    self.config.kafka_topic,
                    self.config.group_id,
                )
                return True
        self._log_final_commit_failed(error)
        return False

    def _commit_after_rebalance(self, client: Consumer, deadline: float) -> KafkaError | None:
        """Poll (serving rebalance callbacks) and commit again until it succeeds, fails otherwise, or deadline."""
        # Paused partitions fetch nothing; what was fetched already is dropped unstored, so it is redelivered.
        self._pause_assignment(client)
        error: KafkaError | None = None
        while time.monotonic() < deadline:
            client.poll(COMMIT_RETRY_INTERVAL)  # a message returned here is not handled, nor stored
            error = self._try_commit(client)
            if error is None or error.code() not in REBALANCE_COMMIT_ERRORS:
                return error
        return error

    def _pause_assignment(self, client: Consumer) -> None:
        try:
            client.pause(client.assignment())
        except KafkaException as error:
            # Not fatal: fetched messages are dropped unstored anyway, paused or not.
            logger.debug("Could not pause %s before the final commit (%s).", self.config.kafka_topic, error)

    def _log_final_commit_failed(self, error: KafkaError | None) -> None:
        logger.warning(
            "Committing offsets of %s (group %s) on shutdown failed (%s); leaving the group now, so messages "
            "handled since the last successful commit will be handled again by the partitions' next owners.",
            self.config.kafka_topic,
            self.config.group_id,
            error.str() if error is not None else f"the rebalance did not settle within {SHUTDOWN_SETTLE_TIMEOUT:g}s",
        )

    def _on_assign(self, client: Consumer, partitions: list[TopicPartition]) -> None:
        if self._reset_pending and partitions:
            self._apply_reset(client, partitions)
        # Waiting to join the group (e.g. until a killed member's session expires) is not an idle
        # topic: --idle-timeout counts from the latest assignment, never from before the first one.
        self._assigned = True
        self._last_message_at = time.monotonic()
        logger.info(
            "Assigned partitions %s of %s (group %s).",
            _partition_list(partitions),
            self.config.kafka_topic,
            self.config.group_id,
        )
        self._emit("after_assign", [p.partition for p in partitions])

    def _apply_reset(self, client: Consumer, partitions: list[TopicPartition]) -> None:
        """Rewind the first assigned partitions, commit the new positions, and assign from them."""
        assert self.options.reset is not None
        self._reset_pending = False
        positions = reset_positions(
            client, self.config.kafka_topic, [p.partition for p in partitions], self.options.reset
        )
        client.commit(offsets=positions, asynchronous=False)
        options = self.config.consumer_config
        # Incremental unless the user chose an eager strategy; KIP-848 groups are always incremental.
        if options.get("group.protocol") == "consumer" or (
            options.get("partition.assignment.strategy", "cooperative-sticky") == "cooperative-sticky"
        ):
            client.incremental_assign(positions)
        else:
            client.assign(positions)
        logger.info(
            "Reset group %s to %s on %s: partitions %s restart at offsets %s.",
            self.config.group_id,
            self.options.reset.describe(),
            self.config.kafka_topic,
            _partition_list(positions),
            [p.offset for p in sorted(positions, key=lambda p: p.partition)],
        )

    def reset_only(self) -> list[TopicPartition]:
        """Commit the reset positions of every partition for the group, without consuming; return them."""
        assert self.options.reset is not None
        client = Consumer(self.client_config())
        try:
            self._wait_for_topic(client)
            metadata = client.list_topics(self.config.kafka_topic, timeout=self.config.connect_timeout)
            partitions = sorted(metadata.topics[self.config.kafka_topic].partitions)
            positions = reset_positions(client, self.config.kafka_topic, partitions, self.options.reset)
            try:
                client.commit(offsets=positions, asynchronous=False)
            except KafkaException as error:
                raise ConfigurationError(
                    f"could not reset group {self.config.group_id} ({error.args[0].str() if error.args else error}); "
                    "stop every consumer of the group first: a reset needs a group without active members"
                ) from error
        finally:
            client.close()
        logger.info(
            "Reset group %s to %s on %s: offsets %s committed; exiting (--reset-only).",
            self.config.group_id,
            self.options.reset.describe(),
            self.config.kafka_topic,
            {p.partition: p.offset for p in positions},
        )
        return positions

    def _on_revoke(self, client: Consumer, partitions: list[TopicPartition]) -> None:
        """Commit handled offsets (the revoked partitions' among them) before librdkafka gives them up."""
        self.retries.forget(partitions, client)
        # Until this callback returns the revoked partitions are still ours, under a generation the broker
        # accepts once a concurrent join or sync is over; the callback cannot poll, so it only waits a little.
        error = self._try_commit(client)
        deadline = time.monotonic() + REVOKE_COMMIT_TIMEOUT
        while error is not None and error.code() in REBALANCE_COMMIT_ERRORS and time.monotonic() < deadline:
            time.sleep(COMMIT_RETRY_INTERVAL)
            error = self._try_commit(client)
        if error is None:
            logger.info(
                "Revoked partitions %s of %s (group %s) after committing handled offsets.",
                _partition_list(partitions),
                self.config.kafka_topic,
                self.config.group_id,
            )
        else:
            logger.warning(
                "Revoked partitions %s of %s (group %s), but committing handled offsets failed (%s); their next "
                "owners will handle again the messages handled since the last commit.",
                _partition_list(partitions),
                self.config.kafka_topic,
                self.config.group_id,
                error.str(),
            )
        self._emit("after_revoke", [p.partition for p in partitions], False)

    def _on_lost(self, client: Consumer, partitions: list[TopicPartition]) -> None:
        self.retries.forget(partitions, client)
        logger.warning(
            "Lost partitions %s of %s (group %s) without a clean revoke; "
            "their uncommitted messages will be redelivered to the new owner.",
            _partition_list(partitions),
            self.config.kafka_topic,
            self.config.group_id,
        )
        self._emit("after_revoke", [p.partition for p in partitions], True)

    def _on_stats(self, stats_json: str) -> None:
        """librdkafka's statistics callback, served from poll()."""
        try:
            stats = json.loads(stats_json)
        except ValueError:
            return
        self._latest_stats = stats
        self._emit("after_stats", stats)

    # -- errors ------------------------------------------------------------------------------

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's error callback, served from poll(): record fatal errors, log the rest."""
        if self._errors.record(error):
            return
        if error.code() in MISSING_TOPIC_ERRORS:
            self._check_topic_soon(error)
        elif error.code() in TRANSIENT_ERRORS:
            self._log_unreachable(error)
        else:
            logger.warning("Kafka client error (%s); the client retries on its own.", error.str())

    def _log_unreachable(self, error: KafkaError) -> None:
        """Say that Kafka is unreachable at most every UNREACHABLE_LOG_INTERVAL seconds, with a count."""
        now = time.monotonic()
        self._unreachable_count += 1
        if now - self._unreachable_logged_at < UNREACHABLE_LOG_INTERVAL:
            return
        logger.warning(
            "Kafka is unreachable for now (%s; %d error(s) since the last such line); librdkafka keeps reconnecting.",
            error.str(),
            self._unreachable_count,
        )
        self._unreachable_logged_at, self._unreachable_count = now, 0

    def _check_topic_soon(self, error: KafkaError) -> None:
        """librdkafka says the topic or a partition is unknown: let the next loop turn check the topic's metadata."""
        if self._topic_missing_since is None:
            self._topic_check_at = min(self._topic_check_at, time.monotonic())
        logger.info(
            "Kafka reported %s for topic %s (group %s); checking whether the topic still exists.",
            _without_secrets(error.str()),
            self.config.kafka_topic,
            self.config.group_id,
        )

    def _on_message_error(self, error: KafkaError) -> None:
        if error.code() in MISSING_TOPIC_ERRORS:
            # Decided by the metadata check, so that a topic briefly missing while created is not fatal.
            self._check_topic_soon(error)
            return
        # A fatal error reaches the loop as a message whose error code is _FATAL, and that error's own
        # fatal() flag is not set: the code is what says the client cannot go on (a fenced member, say).
        if error.fatal() or error.code() == KafkaError._FATAL:
            raise FatalKafkaError(f"fatal Kafka error: {error.str()}; the process exits for a restart")
        logger.warning("Kafka reported %s while consuming %s; polling goes on.", error.str(), self.config.kafka_topic)

    def _emit(self, name: str, *args: Any) -> None:
        """Call hook point ``name`` of the hooks that implement it."""
        for hook in self._hooked[name]:
            getattr(hook, name)(self, *args)

    def _raise_if_fatal(self) -> None:
        self._errors.raise_if_fatal()


def _value_signal_receivers(config: TopicConfig) -> Callable[[], bool] | None:
    """For an Open edX topic, whether any OpenEdxPublicSignal has a receiver; None for other topics."""
    if not config.openedx_events:
        return None
    from kafka_consumer_app.engine.openedx import any_openedx_receivers  # needs the openedx extra

    return any_openedx_receivers


def _without_secrets(text: str) -> str:
    """``text`` (a librdkafka error string) with any secret of the settings masked, for one-line errors."""
    # librdkafka ends some reasons with a newline ("... outside allowed range 1..3600000\n"): keep the line one.
    return " ".join(redact_text(text, secret_values()).split())


def _printable(value: Any) -> bool:
    """Whether a librdkafka option's value is plain data (not a callback or a logger) worth logging."""
    return isinstance(value, (str, int, float, bool))


def _partition_list(partitions: list[TopicPartition]) -> str:
    return (
        "[" + ", ".join(str(partition.partition) for partition in sorted(partitions, key=lambda p: p.partition)) + "]"
    )


def _coordinates(raw: KafkaMessage) -> str:
    return f"{raw.topic()}[{raw.partition()}]@{raw.offset()}"
