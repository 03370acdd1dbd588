"""
Database outages: a receiver that failed because the database is unavailable, not because of its message.

:class:`DatabaseErrors` is the one place that classifies a failure: connection-level errors
(``django.db.OperationalError``, ``django.db.InterfaceError`` and the classes of ``DATABASE_ERRORS``,
also as the cause of another error or of a :class:`~kafka_consumer_app.exceptions.BatchFailed`), or
any error after which a connection of the thread is no longer usable. :class:`DatabaseOutage` keeps
the consumer-wide state of an outage: since when, how long the next wait is (capped exponential
backoff: each wait is as long as the outage so far, from ``OUTAGE_INITIAL_WAIT`` up to
``OUTAGE_MAX_WAIT``), whether ``DATABASE_OUTAGE_TIMEOUT`` is over; it reports each change to the
``after_database_outage`` hooks. The failure policy (:mod:`kafka_consumer_app.engine.policy`) asks it
before anything else, so an outage never uses up a message's retries, never parks it and never counts
towards the circuit breaker. See docs/decisions/0009-database-outages.rst.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.utils.module_loading import import_string

from kafka_consumer_app.engine.dispatch import ReceiverFailure
from kafka_consumer_app.engine.hooks import OutageState
from kafka_consumer_app.engine.scheduling import Scheduler, Work
from kafka_consumer_app.exceptions import BatchFailed
from kafka_consumer_app.settings.outages import OutageConfig

#: What Django's backends raise when the connection to the database is lost or cannot be made.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)
#: How long a message not tried yet waits, at most, while an outage goes on (workers), before it looks again.
HOLD_WAIT = 1.0
#: How deep :func:`causes` follows ``__cause__``: far more than any real chain, and no loop forever.
_MAX_CHAIN = 10


def causes(error: BaseException) -> Iterator[BaseException]:
    """The error, what it was raised from (``raise ... from``), and the cause of a BatchFailed, in turn."""
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < _MAX_CHAIN:
        yield current
        seen += 1
        current = current.cause if isinstance(current, BatchFailed) else current.__cause__


def describe_error(error: BaseException) -> str:
    """``Class: first line of the message``: database drivers' messages span lines, log lines do not."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


class DatabaseErrors:
    """Tells a database outage from a failure of the message: the one classification of both engines."""

    def __init__(self, extra: Sequence[str] = ()) -> None:
        self.classes = CONNECTION_ERRORS + tuple(import_string(path) for path in extra)

    def connection_level(self, error: BaseException) -> bool:
        """Whether ``error``, or what it was raised from, is a connection-level database error."""
        return any(isinstance(cause, self.classes) for cause in causes(error))

    def caused(self, failures: Sequence[ReceiverFailure]) -> bool:
        """
        Whether the database is out: a receiver's error is connection-level (an outage wins over the
        others' errors: the message had no fair try), or, after any error, a connection of this thread
        is no longer usable. Call it on the thread that ran the receivers: connections are per thread.
        """
        if not failures:
            return False
        return any(self.connection_level(failure.error) for failure in failures) or broken_connection()


def broken_connection() -> bool:
    """Whether an open connection of this thread, outside a transaction, no longer answers."""
    for alias in connections:
        wrapper = connections[alias]
        if wrapper.connection is None or wrapper.in_atomic_block:
            continue
        try:
            if not wrapper.is_usable():
                return True
        except DatabaseError:
            return True
    return False


def reset_connections() -> None:
    """Close every connection of this thread, on every alias: the next query opens a new one."""
    for alias in connections:
        with contextlib.suppress(DatabaseError):  # closing a connection the server dropped may raise
            connections[alias].close()


class DatabaseOutage:
    """
    Whether the database is out, since when, and how long to wait; thread-safe (workers share it).

    An outage begins at the first failure :meth:`wait` is told of, and ends when a message is handled
    or fails for another reason (:meth:`answered`): the database answered.
    """

    def __init__(
        self,
        config: OutageConfig,
        emit: Callable[..., None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.errors = DatabaseErrors(config.errors)
        self._emit = emit
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._error = ""

    @property
    def active(self) -> bool:
        """Whether the database is taken for unavailable now."""
        return self._since is not None

    def caused(self, failures: Sequence[ReceiverFailure]) -> bool:
        """Whether ``failures`` mean the database is out (see :meth:`DatabaseErrors.caused`)."""
        return self.errors.caused(failures)

    def wait(self, failures: Sequence[ReceiverFailure]) -> tuple[float | None, float]:
        """
        A try failed because the database is out: reset this thread's connections, and return how long
        to wait before the next try (None once ``DATABASE_OUTAGE_TIMEOUT`` is over) and the outage's length.
        """
        reset_connections()
        error = next((f.error for f in failures if self.errors.connection_level(f.error)), failures[0].error)
        with self._lock:
            now = self._clock()
            if self._since is None:
                self._since = now
            self._error = describe_error(error)
            elapsed = now - self._since
            left = self.config.timeout - elapsed
            delay = None if left <= 0 else min(left, max(self.config.initial_wait, min(elapsed, self.config.max_wait)))
            state = self._state(now)
        self._report(state)
        return delay, elapsed

    def answered(self) -> None:
        """The database answered (a message was handled, or failed otherwise): the outage, if any, is over."""
        if self._since is None:  # the common case, without the lock
            return
        with self._lock:
            since, self._since = self._since, None
        if since is not None:  # another thread may have ended it meanwhile
            self._report(OutageState(False, self._clock() - since, self._error, self.config.timeout))

    def hold_wait(self) -> float | None:
        """While an outage goes on, how long a message not tried yet waits before it looks again; else None."""
        return HOLD_WAIT if self._since is not None else None

    def state(self) -> OutageState | None:
        """The outage going on, or None."""
        with self._lock:
            return None if self._since is None else self._state(self._clock())

    def _state(self, now: float) -> OutageState:
        assert self._since is not None
        return OutageState(True, now - self._since, self._error, self.config.timeout)

    def _report(self, state: OutageState) -> None:
        if self._emit is not None:
            self._emit("after_database_outage", state)


def hold_back(scheduler: Scheduler, work: Work, outage: DatabaseOutage | None) -> bool:
    """
    Workers: while the database is out, put off a message (or batch) not tried yet, without trying it,
    and return True; only those that failed meanwhile try the database again, at their backoff.
    """
    wait = outage.hold_wait() if outage is not None else None
    if wait is None:
        return False
    scheduler.retry_at(work, time.monotonic() + wait)
    return True
