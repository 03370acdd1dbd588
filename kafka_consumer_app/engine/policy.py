"""
The failure policy: given how a message failed, decide what happens next; never act.

:meth:`FailurePolicy.decide` returns one :data:`Decision`: :class:`Retry` (try again after a
backoff), :class:`Park` (write it to the dead-letter topic, then move on), :class:`Skip` (log,
commit, move on) or :class:`Stop` (end the process without committing it). The loop carries
the decision out; the policy holds no client and calls nothing back, so every rule here is
testable without Kafka. See docs/decisions/0002-retries-and-dead-letters.rst.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.utils.module_loading import import_string

from kafka_consumer_app.engine.dispatch import ReceiverFailure
from kafka_consumer_app.engine.outages import DatabaseOutage
from kafka_consumer_app.settings.failures import FailureConfig, RetryConfig

REASON_RECEIVER_FAILED = "receiver-failed"
REASON_MALFORMED = "malformed"
#: The reason of a message the consumer stopped on because the database stayed unavailable.
REASON_DATABASE_UNAVAILABLE = "database-unavailable"


class RetryPolicy:
    """Attempts, exponential backoff with jitter, and exceptions never retried."""

    def __init__(self, config: RetryConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.not_retried: tuple[type[BaseException], ...] = tuple(import_string(path) for path in config.not_retried)
        self._rng = rng or random.Random()

    def retryable(self, attempts_made: int, errors: Iterable[BaseException]) -> bool:
        """True when another try is allowed after ``attempts_made`` tries failed with ``errors``."""
        if attempts_made >= self.config.attempts:
            return False
        return not any(isinstance(error, self.not_retried) for error in errors)

    def backoff(self, attempts_made: int) -> float:
        """Seconds to wait before the next try, after ``attempts_made`` failed tries (>= 1)."""
        config = self.config
        base = min(config.max_backoff, config.initial_backoff * config.multiplier ** max(attempts_made - 1, 0))
        spread = base * config.jitter
        return max(0.0, base + self._rng.uniform(-spread, spread))


class CircuitBreaker:
    """Trips after ``threshold`` consecutive failed messages; None never trips."""

    def __init__(self, threshold: int | None) -> None:
        self.threshold = threshold
        self.consecutive = 0

    def record_success(self) -> None:
        """A message was handled: the streak of failures ends."""
        self.consecutive = 0

    def record_failure(self) -> bool:
        """A message failed its last attempt; return True when that trips the breaker."""
        self.consecutive += 1
        return self.threshold is not None and self.consecutive >= self.threshold


@dataclass(frozen=True)
class FailureReport:
    """Why a message is given up: the failing receivers (or the decoding error) and the tries made."""

    reason: str
    errors: Sequence[BaseException]
    receivers: Sequence[str] = field(default_factory=tuple)
    attempts: int = 1

    @classmethod
    def from_failures(cls, failures: Sequence[ReceiverFailure], attempts: int) -> FailureReport:
        """The report of a message whose receivers failed on their last attempt."""
        return cls(
            REASON_RECEIVER_FAILED,
            [failure.error for failure in failures],
            [failure.receiver_name for failure in failures],
            attempts,
        )


@dataclass(frozen=True)
class Retry:
    """Try the failed receivers again after ``delay`` seconds; ``attempts_made`` tries failed so far."""

    delay: float
    attempts_made: int
    failures: Sequence[ReceiverFailure]
    #: Seconds the database has been unavailable, when that is why (the try does not count); else None.
    outage_for: float | None = None


@dataclass(frozen=True)
class Park:
    """Write the message to the dead-letter topic, then store its offset."""

    report: FailureReport


@dataclass(frozen=True)
class Skip:
    """Log the message as given up and store its offset (``FAILURE_POLICY`` ``skip``)."""

    report: FailureReport


@dataclass(frozen=True)
class Stop:
    """End the process without storing the offset; ``tripped`` when the circuit breaker said so."""

    report: FailureReport
    tripped: bool = False
    consecutive: int = 0
    #: Seconds the database was unavailable, when the stop is for that (DATABASE_OUTAGE_TIMEOUT); else None.
    outage_for: float | None = None


Decision = Retry | Park | Skip | Stop


class FailurePolicy:
    """One topic's rules for failed messages: retries, then the circuit breaker, then the failure policy."""

    def __init__(
        self,
        config: FailureConfig,
        can_park: bool,
        rng: random.Random | None = None,
        outage: DatabaseOutage | None = None,
    ) -> None:
        self.config = config
        #: Database outages: asked first, they wait for the database instead (None: no such rule).
        self.outage = outage
        #: Whether a dead-letter producer exists to carry out a Park.
        self.can_park = can_park
        self.retry = RetryPolicy(config.retry, rng)
        self.breaker = CircuitBreaker(config.circuit_breaker)

    def decide(self, failures: Sequence[ReceiverFailure], attempts_made: int) -> Decision:
        """What to do after try number ``attempts_made`` of a message failed in ``failures``."""
        outage = self.outage
        if outage is not None:
            if outage.caused(failures):
                return self._wait_for_database(outage, failures, attempts_made - 1)
            outage.answered()
        if self.retry.retryable(attempts_made, [failure.error for failure in failures]):
            return Retry(self.retry.backoff(attempts_made), attempts_made, failures)
        return self._give_up(FailureReport.from_failures(failures, attempts_made), counts_for_breaker=True)

    def decide_malformed(self, error: BaseException) -> Decision:
        """What to do with a message that cannot be decoded: no retry can fix it, nor is it an outage."""
        return self._give_up(FailureReport(REASON_MALFORMED, [error]), counts_for_breaker=False)

    def record_success(self) -> None:
        """A message was handled: the circuit breaker's streak ends, and so does a database outage."""
        self.breaker.record_success()
        if self.outage is not None:
            self.outage.answered()

    def _wait_for_database(
        self, outage: DatabaseOutage, failures: Sequence[ReceiverFailure], attempts_made: int
    ) -> Decision:
        """Try again once the database may answer, the try not counted; stop once DATABASE_OUTAGE_TIMEOUT is over."""
        delay, elapsed = outage.wait(failures)
        if delay is None:
            report = FailureReport(
                REASON_DATABASE_UNAVAILABLE,
                [failure.error for failure in failures],
                [failure.receiver_name for failure in failures],
                attempts_made,
            )
            return Stop(report, outage_for=elapsed)
        return Retry(delay, attempts_made, failures, outage_for=elapsed)

    def _give_up(self, report: FailureReport, counts_for_breaker: bool) -> Decision:
        if counts_for_breaker and self.breaker.record_failure():
            return Stop(report, tripped=True, consecutive=self.breaker.consecutive)
        if self.config.policy == "stop":
            return Stop(report)
        if self.config.policy == "dead-letter" and self.can_park:
            return Park(report)
        return Skip(report)
