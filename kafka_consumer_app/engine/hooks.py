"""
Hooks: the extension point for everything that observes the consume loop.

Health probes, Prometheus metrics, APM monitoring and tracing are each one :class:`ConsumerHooks`
subclass; the loop calls every registered hook at the points below and knows nothing else
about them. A hook must be quick and must not raise: it runs on the loop's thread, between
messages. :class:`HookEmitter` enforces that in one place: an exception a hook raises is
logged and ignored, except at ``before_start``, where it stops the start (a health port in
use must end the command, not leave it running unobserved).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from confluent_kafka import KafkaError
    from confluent_kafka import Message as KafkaMessage

    from kafka_consumer_app.message import Message
    from kafka_consumer_app.settings.topics import TopicConfig

logger = logging.getLogger(__name__)

#: The outcomes ``after_message`` reports for a message.
HANDLED = "handled"
RETRIED = "retried"
DEAD_LETTERED = "dead_lettered"
SKIPPED = "skipped"
FAILED = "failed"
OUTCOMES = (HANDLED, RETRIED, DEAD_LETTERED, SKIPPED, FAILED)


@dataclass(frozen=True)
class WorkersState:
    """What the worker threads of CONCURRENCY above 1 are doing: what ``after_workers`` hooks get."""

    #: Worker threads.
    threads: int
    #: Messages in a receiver now.
    in_flight: int
    #: Per partition, messages taken in and not finished (queued, running or waiting for a retry).
    queued: dict[int, int]
    #: Per partition, how far the committed watermark is behind the highest finished offset.
    behind: dict[int, int]
    #: Seconds the worker threads spent in receivers since they started, all threads together.
    busy_seconds: float
    #: Partitions paused because they reached MAX_QUEUED (or their watermark is that far behind).
    paused: frozenset[int] = field(default_factory=frozenset)

    def describe(self, utilisation: float) -> str:
        """The progress line's part about the workers, with their ``utilisation`` (0 to 1) over its interval."""
        return (
            f"workers {self.in_flight} of {self.threads} busy, {utilisation:.0%} utilised; queued "
            f"{sum(self.queued.values())} ({_by_partition(self.queued)}); watermark behind by "
            f"{_by_partition(self.behind)}; paused {', '.join(map(str, sorted(self.paused))) or 'none'}"
        )


@dataclass(frozen=True)
class OutageState:
    """A database outage, as ``after_database_outage`` hooks get it: going on (``down``) or just over."""

    #: True while the database is unavailable; False once it answered again.
    down: bool
    #: Seconds since the outage began (its whole length, once over).
    seconds: float
    #: The latest connection-level error, ``Class: message``.
    error: str
    #: DATABASE_OUTAGE_TIMEOUT: the consumer exits once the outage lasts this long.
    timeout: float

    def describe(self) -> str:
        """One line about the outage, for the progress line and readiness."""
        if not self.down:
            return f"the database answered again after an outage of {self.seconds:.0f}s"
        return (
            f"database unavailable for {self.seconds:.0f}s ({self.error}); waiting for it, with nothing parked "
            f"or skipped, for up to DATABASE_OUTAGE_TIMEOUT {self.timeout:g}s"
        )


@dataclass(frozen=True)
class ControlState:
    """What the operator console says of the topic, as ``after_control`` hooks get it."""

    #: True while an operator has the topic's consumers paused.
    paused: bool
    #: Who paused or resumed it last ("" when unknown).
    changed_by: str = ""
    #: When, as an ISO 8601 string ("" when unknown).
    changed_at: str = ""

    def describe(self) -> str:
        """One line about the pause, for the progress line and readiness."""
        if not self.paused:
            return "resumed" + (f" by {self.changed_by}" if self.changed_by else "")
        who = f" by {self.changed_by}" if self.changed_by else ""
        since = f" since {self.changed_at}" if self.changed_at else ""
        return f"paused from the admin console{who}{since}; fetching nothing until resumed"


def _by_partition(values: dict[int, int]) -> str:
    return ", ".join(f"partition {number}: {value}" for number, value in sorted(values.items()) if value) or "none"


class ConsumerView(Protocol):
    """What a hook may read of the consumer that calls it; hooks are typed against this, not the engine."""

    @property
    def config(self) -> TopicConfig:
        """The resolved settings of the topic being consumed."""
        ...


class ConsumerHooks:
    """Base class of loop observers; every hook is a no-op here."""

    #: Kept for hooks written against earlier versions: the consumer always enables librdkafka statistics
    #: (its progress line reports the lag from them) and calls ``after_stats`` of every hook that has one.
    wants_statistics = False

    def before_start(self, consumer: ConsumerView) -> None:
        """Called once, before the consumer subscribes."""

    def after_poll(self, consumer: ConsumerView) -> None:
        """
        Called after every poll, whether it returned messages or not, and between the messages of a
        batch at most every ``BEAT_INTERVAL`` (0.1 s): the loop is alive.
        """

    def after_assign(self, consumer: ConsumerView, partitions: Sequence[int]) -> None:
        """Called when the group assigned ``partitions`` to this consumer."""

    def after_revoke(self, consumer: ConsumerView, partitions: Sequence[int], lost: bool) -> None:
        """Called when ``partitions`` were revoked (``lost`` when taken without a clean revoke)."""

    def before_message(self, consumer: ConsumerView, message: Message) -> None:
        """Called before a message is dispatched to its receivers."""

    def dispatching(self, consumer: ConsumerView, message: Message) -> AbstractContextManager[Any]:
        """
        Return a context manager that the dispatch of ``message`` to its receivers runs inside.

        For what must surround the receivers rather than follow them: an APM trace, say. It is
        entered after ``before_message`` and left before ``after_receiver``.
        """
        return nullcontext()

    def dispatching_batch(self, consumer: ConsumerView, messages: Sequence[Message]) -> AbstractContextManager[Any]:
        """
        Return a context manager that the dispatch of a batch (``batch_signal`` receivers) runs inside.

        ``messages`` are the batch's, one partition's in offset order. By default, the ``dispatching``
        context of the first one: a hook that traces single messages traces batches the same way.
        """
        return self.dispatching(consumer, messages[0])

    def after_receiver(self, consumer: ConsumerView, receiver: str, seconds: float, error: Exception | None) -> None:
        """Called after each receiver returned (``error`` None) or raised, with its run time."""

    def after_message(self, consumer: ConsumerView, raw: KafkaMessage, outcome: str) -> None:
        """Called once the fate of a message attempt is known; ``outcome`` is one of OUTCOMES."""

    def after_stats(self, consumer: ConsumerView, stats: dict[str, Any]) -> None:
        """Called with librdkafka's statistics (see its STATISTICS.md) when ``wants_statistics``."""

    def after_commit_failed(self, consumer: ConsumerView, error: KafkaError | Exception) -> None:
        """Called when committing offsets failed (they stay stored and are retried)."""

    def after_topic_missing(self, consumer: ConsumerView, missing: bool) -> None:
        """Called when a broker said the topic does not exist (``missing``; the consumer exits unless it
        reappears within seconds), and when it was found again (not ``missing``)."""

    def after_workers(self, consumer: ConsumerView, state: WorkersState) -> None:
        """Called about once a second with what the worker threads do (CONCURRENCY above 1 only)."""

    def after_database_outage(self, consumer: ConsumerView, outage: OutageState) -> None:
        """Called when a database outage begins, at each try while it lasts, and once it is over."""

    def after_control(self, consumer: ConsumerView, control: ControlState) -> None:
        """Called when an operator paused or resumed the topic's consumers (and at start, if paused)."""

    def after_stop(self, consumer: ConsumerView) -> None:
        """Called once the loop ended, cleanly or not, before the client is closed."""


#: Every hook point of ConsumerHooks.
HOOK_POINTS = tuple(name for name in vars(ConsumerHooks) if name.startswith(("before_", "after_", "dispatching")))
#: Hook points where an exception is fatal: a hook that cannot start (a health port in use) stops the consumer.
FATAL_HOOK_POINTS = frozenset({"before_start"})


def overriding(hooks: Iterable[ConsumerHooks], name: str) -> list[ConsumerHooks]:
    """The hooks of ``hooks`` that implement hook point ``name``; the loop skips points nobody implements."""
    default = getattr(ConsumerHooks, name)
    return [hook for hook in hooks if getattr(type(hook), name, default) is not default]


@contextmanager
def around_dispatch(hooks: Iterable[ConsumerHooks], consumer: ConsumerView, message: Message) -> Iterator[None]:
    """Run the block inside the ``dispatching`` context of every hook in ``hooks``, the first one outermost."""
    with ExitStack() as stack:
        for hook in hooks:
            stack.enter_context(hook.dispatching(consumer, message))
        yield


@contextmanager
def _around_batch(
    hooks: Iterable[ConsumerHooks], consumer: ConsumerView, messages: Sequence[Message]
) -> Iterator[None]:
    with ExitStack() as stack:
        for hook in hooks:
            stack.enter_context(hook.dispatching_batch(consumer, messages))
        yield


class HookEmitter:
    """
    Calls the hooks at each hook point, and holds the contract that hooks must not raise.

    Per hook point only the hooks that implement it are kept, so points nobody implements
    cost one dictionary look-up. A hook that raises is logged with its name and ignored,
    except at :data:`FATAL_HOOK_POINTS`, where the exception goes on to the caller.
    """

    def __init__(self, hooks: Iterable[ConsumerHooks], consumer: ConsumerView) -> None:
        hooks = list(hooks)
        self._consumer = consumer
        self._hooked = {name: overriding(hooks, name) for name in HOOK_POINTS}
        # dispatching_batch defaults to the dispatching context: a hook overriding either one takes part in batches.
        batch_hooks = {id(hook) for hook in (*self._hooked["dispatching"], *self._hooked["dispatching_batch"])}
        self._hooked["dispatching_batch"] = [hook for hook in hooks if id(hook) in batch_hooks]
        #: The hook points some hook implements; ``name in emitter.wanted`` is wants() without a call.
        self.wanted = frozenset(name for name, found in self._hooked.items() if found)
        #: Per hook point, each hook with its bound method: emit() looks nothing up per call.
        self._methods = {name: [(hook, getattr(hook, name)) for hook in found] for name, found in self._hooked.items()}

    def wants(self, name: str) -> bool:
        """Whether any hook implements hook point ``name`` (to skip building its arguments)."""
        return bool(self._hooked[name])

    def emit(self, name: str, *args: Any) -> None:
        """Call hook point ``name`` of every hook that implements it, in order."""
        for hook, method in self._methods[name]:
            try:
                method(self._consumer, *args)
            except Exception:
                if name in FATAL_HOOK_POINTS:
                    raise
                config = self._consumer.config
                logger.exception(
                    "Hook %s.%s raised while consuming %s (group %s); ignored: the other hooks run and "
                    "consuming goes on.",
                    type(hook).__qualname__,
                    name,
                    config.kafka_topic,
                    config.group_id,
                )

    def dispatching(self, message: Message) -> AbstractContextManager[None]:
        """The context of every hook's ``dispatching`` for ``message``, the first hook outermost."""
        if not self._hooked["dispatching"]:
            return nullcontext()
        return around_dispatch(self._hooked["dispatching"], self._consumer, message)

    def dispatching_batch(self, messages: Sequence[Message]) -> AbstractContextManager[None]:
        """The context of every hook's ``dispatching_batch`` for ``messages``, the first hook outermost."""
        hooks = self._hooked["dispatching_batch"]
        if not hooks:
            return nullcontext()
        return _around_batch(hooks, self._consumer, messages)
