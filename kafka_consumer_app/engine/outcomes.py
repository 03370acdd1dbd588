"""
Carrying out the failure policy's decision about a failed message, and the lines that say so.

The policy (:mod:`kafka_consumer_app.engine.policy`) decides; :class:`Outcomes` acts: it
schedules a retry (pausing the partition), parks the message in the dead-letter topic and
stores its offset, skips it and stores its offset, or raises the error that stops the
consumer with the message uncommitted. Each outcome is reported to the ``after_message`` hooks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Consumer
from confluent_kafka import Message as KafkaMessage

from kafka_consumer_app.engine.dead_letters import DeadLetterProducer
from kafka_consumer_app.engine.hooks import DEAD_LETTERED, FAILED, RETRIED, SKIPPED
from kafka_consumer_app.engine.outages import describe_error
from kafka_consumer_app.engine.policy import (
    REASON_DATABASE_UNAVAILABLE,
    REASON_MALFORMED,
    REASON_RECEIVER_FAILED,
    Decision,
    FailureReport,
    Park,
    Retry,
    Skip,
    Stop,
)
from kafka_consumer_app.engine.progress import RunSummary
from kafka_consumer_app.engine.records import locate, where
from kafka_consumer_app.engine.retries import RetryScheduler
from kafka_consumer_app.exceptions import CircuitOpenError, DatabaseUnavailableError, MessageFailedError
from kafka_consumer_app.settings.topics import TopicConfig

logger = logging.getLogger(__name__)


class Outcomes:
    """
    Carries out a :data:`Decision` about one failed message.

    ``mark`` marks a message's offset for storing with the rest of its batch; ``dead_letters`` is
    set once the dead-letter producer exists (``run()`` creates it).
    """

    def __init__(
        self,
        config: TopicConfig,
        retries: RetryScheduler,
        summary: RunSummary,
        emit: Callable[..., None],
        mark: Callable[[int, KafkaMessage], None],
    ) -> None:
        self._config = config
        self._retries = retries
        self._summary = summary
        self._emit = emit
        self._mark = mark
        self.dead_letters: DeadLetterProducer | None = None

    def carry_out(self, client: Consumer | None, raw: KafkaMessage, decision: Decision) -> None:
        """
        Do what ``decision`` says with ``raw``; raise CircuitOpenError or MessageFailedError for a Stop.

        ``client`` is needed for a Retry only (its partition is paused): the workers of CONCURRENCY
        above 1 schedule retries themselves and pass None.
        """
        if isinstance(decision, Retry):
            assert client is not None, "a retry pauses the partition on the client"
            self._retry(client, raw, decision)
            return
        if decision.report.reason == REASON_RECEIVER_FAILED:
            self._log_last_attempt(raw, decision.report)
            self._retries.finish(locate(raw).partition)
        if isinstance(decision, Stop):
            self._emit("after_message", raw, FAILED)
            raise self._stop_error(where(raw), decision)
        if isinstance(decision, Park):
            self._park(raw, decision.report)
        else:
            self._skip(raw, decision)
        self._mark(locate(raw).partition, raw)

    def _retry(self, client: Consumer, raw: KafkaMessage, retry: Retry) -> None:
        location = locate(raw)
        self._retries.schedule(client, location, retry.attempts_made, retry.failures, retry.delay)
        if retry.outage_for is None:
            self.retrying(raw, retry, f"with partition {location.partition} paused meanwhile")
            return
        self._retries.hold(client)  # the database is everyone's: no partition goes on meanwhile
        self.retrying(raw, retry, "with the topic's partitions paused meanwhile")

    def retrying(self, raw: KafkaMessage, retry: Retry, meanwhile: str) -> None:
        """Count, report and log a retry that is scheduled (``meanwhile`` says what waits for it)."""
        location = locate(raw)
        self._summary.retried += 1
        self._emit("after_message", raw, RETRIED)
        if retry.outage_for is not None:
            self._waiting_for_database(raw, retry, meanwhile)
            return
        for failure in retry.failures:
            logger.warning(
                "Receiver %s failed on %s (group %s, attempt %d of %d): %s: %s; will be retried in %.1fs, %s.",
                failure.receiver_name,
                location,
                self._config.group_id,
                retry.attempts_made,
                self._config.failure.retry.attempts,
                type(failure.error).__name__,
                failure.error,
                retry.delay,
                meanwhile,
            )

    def _waiting_for_database(self, raw: KafkaMessage, retry: Retry, meanwhile: str) -> None:
        error = retry.failures[0].error
        logger.warning(
            "The database is unavailable (for %.0fs): receiver %s failed on %s (group %s) with %s; its "
            "connections were reset, and the message will be tried again in %.1fs, %s, without using up its "
            "retries (the consumer exits after DATABASE_OUTAGE_TIMEOUT %gs).",
            retry.outage_for or 0.0,
            ", ".join(failure.receiver_name for failure in retry.failures),
            locate(raw),
            self._config.group_id,
            describe_error(error),
            retry.delay,
            meanwhile,
            self._config.outage.timeout,
        )

    def _log_last_attempt(self, raw: KafkaMessage, report: FailureReport) -> None:
        for receiver, error in zip(report.receivers, report.errors, strict=True):
            logger.error(
                "Receiver %s failed on %s (group %s) on attempt %d, its last: %s: %s",
                receiver,
                where(raw),
                self._config.group_id,
                report.attempts,
                type(error).__name__,
                error,
                exc_info=(type(error), error, error.__traceback__),
            )

    def _park(self, raw: KafkaMessage, report: FailureReport) -> None:
        dead_letters = self.dead_letters
        assert dead_letters is not None, "the policy parks only when a dead-letter producer exists"
        try:
            dead_letters.park(raw, report)
        except MessageFailedError:
            self._emit("after_message", raw, FAILED)
            raise
        self._summary.dead_lettered += 1
        self._emit("after_message", raw, DEAD_LETTERED)
        logger.warning(
            "Parked %s (group %s) in dead-letter topic %s after %d attempt(s) (%s); moving on.",
            where(raw),
            self._config.group_id,
            dead_letters.topic,
            report.attempts,
            report.reason,
        )

    def _skip(self, raw: KafkaMessage, skip: Skip) -> None:
        self._summary.skipped += 1
        self._emit("after_message", raw, SKIPPED)
        logger.error(
            "Skipped %s (group %s) after %d attempt(s) (%s), as FAILURE_POLICY 'skip' says; it is not retried.",
            where(raw),
            self._config.group_id,
            skip.report.attempts,
            skip.report.reason,
        )

    def _stop_error(self, where: str, stop: Stop) -> CircuitOpenError | MessageFailedError | DatabaseUnavailableError:
        if stop.report.reason == REASON_DATABASE_UNAVAILABLE:
            error = stop.report.errors[0]
            return DatabaseUnavailableError(
                f"the database was unavailable for {stop.outage_for or 0.0:.0f}s (DATABASE_OUTAGE_TIMEOUT "
                f"{self._config.outage.timeout:g}s; last error {describe_error(error)}); "
                f"{where} was not committed, nor parked; bring the database back (check DATABASES and the "
                "server), and the restarted consumer handles the message"
            )
        if stop.tripped:
            return CircuitOpenError(
                f"{stop.consecutive} consecutive messages failed (CIRCUIT_BREAKER); {where} was not committed; "
                "the consumer stops so that it restarts once the cause (a database, a service) recovers"
            )
        report = stop.report
        if report.reason == REASON_MALFORMED:
            return MessageFailedError(
                f"{where} is malformed: {report.errors[0]}; the offset was not committed; "
                f"fix the producer or the topic's DESERIALIZER (now {self._config.deserializer!r})"
            )
        return MessageFailedError(
            f"receiver {', '.join(report.receivers)} failed on {where} after {report.attempts} attempt(s); the "
            "offset was not committed, so the message will be redelivered; fix the receiver or its dependencies "
            "and restart"
        )
