"""
OpenTelemetry tracing: a consumer span per message attempt, continuing the producer's trace.

Installed when ``KAFKA_CONSUMER["TRACING"]`` is ``"opentelemetry"`` (the composition root imports
this module only then, so opentelemetry is never imported otherwise). Spans go to the tracer
provider the service configured (``opentelemetry.trace.set_tracer_provider``, or the
``opentelemetry-instrument`` launcher); without one, the API's no-op provider drops them.

- Each attempt at a message is one span of kind CONSUMER named ``process <topic>``, with the
  messaging semantic conventions' attributes (those of opentelemetry-semantic-conventions 0.66b2):
  ``messaging.system``, ``messaging.destination.name``, ``messaging.operation.type`` and ``.name``
  (``process``), ``messaging.consumer.group.name``, ``messaging.destination.partition.id``,
  ``messaging.kafka.offset``, ``messaging.message.id`` (the CloudEvents ``ce_id`` header) and ``cloudevents.event_type``
  (``ce_type``). Its parent is the context that the message's headers carry (``traceparent`` and
  ``tracestate``, through the globally configured propagator); without one it starts a trace.
- A batch (``batch_signal`` receivers) is one span per attempt, the root of its own trace, linked
  to each message's producer context, with ``messaging.batch.message_count``.
- The receivers run with that span current, so what they instrument themselves nests under it.
  Each receiver call is a child span named after the receiver, recorded from the run time that
  ``after_receiver`` reports (the hooks surround the dispatch, not each call: see ADR 16); one that
  raised records the exception, with status ERROR, on itself and on the consumer span.
- The span ends when the message's outcome is known (``after_message``): one other than handled
  is an event (``kafka_consumer_app.retried``, ``.dead_lettered``, ``.skipped``, ``.failed``) and,
  for a single message, the attribute ``kafka_consumer_app.outcome``. A retry is a new span with
  the same parent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from kafka_consumer_app import __version__
from kafka_consumer_app.engine.hooks import FAILED, HANDLED, ConsumerHooks
from kafka_consumer_app.message import Headers

if TYPE_CHECKING:
    from confluent_kafka import Message as KafkaMessage

    from kafka_consumer_app.engine.hooks import ConsumerView
    from kafka_consumer_app.message import Message
    from kafka_consumer_app.settings.topics import TopicConfig

#: The instrumentation scope of every span.
TRACER_NAME = "kafka_consumer_app"
#: The CloudEvents (Kafka binding) header carrying the event's id.
MESSAGE_ID_HEADER = "ce_id"
#: The operation every consumer span describes: receivers processing what was received.
OPERATION = "process"
#: The attribute naming a single message's outcome (one of kafka_consumer_app.engine.hooks.OUTCOMES).
OUTCOME_ATTRIBUTE = "kafka_consumer_app.outcome"
OFFSET_ATTRIBUTE = "messaging.kafka.offset"


class HeaderGetter(Getter[Headers]):
    """Reads propagation fields (``traceparent``, ``tracestate``...) from a message's headers, by name."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        """Every value of header ``key``, decoded; None when the message has none."""
        found = []
        for name, value in carrier:
            if value is not None and name.lower() == key:
                try:
                    found.append(value.decode("utf-8"))
                except UnicodeDecodeError:
                    continue  # not a propagation field this process could have written: ignored
        return found or None

    def keys(self, carrier: Headers) -> list[str]:
        """The names of the headers."""
        return [name for name, _ in carrier]


HEADERS = HeaderGetter()


def producer_context(headers: Headers) -> otel_context.Context:
    """The context the producer propagated in ``headers``; an empty one (a new trace) when there is none."""
    return propagate.extract(headers, context=otel_context.Context(), getter=HEADERS)


def destination_attributes(config: TopicConfig, topic: str, partition: int) -> dict[str, Any]:
    """What every consumer span of ``topic``'s ``partition`` carries."""
    return {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.operation.type": OPERATION,
        "messaging.operation.name": OPERATION,
        "messaging.consumer.group.name": config.group_id,
        "messaging.destination.partition.id": str(partition),
    }


def message_attributes(message: Message) -> dict[str, Any]:
    """
    The attributes of one message's span: its offset, and its id and event type when it has them.

    Never its key (which the conventions recommend) nor its value: either may hold personal data, which
    a trace backend keeps out of the service's reach, so the app records neither, as in its monitoring.
    """
    attributes: dict[str, Any] = {OFFSET_ATTRIBUTE: message.offset}
    message_id = _header_text(message, MESSAGE_ID_HEADER)
    if message_id is not None:
        attributes["messaging.message.id"] = message_id
    if message.event_type:
        attributes["cloudevents.event_type"] = message.event_type
    return attributes


def _header_text(message: Message, name: str) -> str | None:
    value = message.header(name)
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def error_type(error: BaseException) -> str:
    """The ``error.type`` of an exception: its class's qualified name (with its module unless a builtin)."""
    cls = type(error)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class _Attempt:
    """One consumer span from the dispatch until the outcomes of its messages are known."""

    __slots__ = ("awaited", "cursor", "dispatched", "ended", "partition", "single", "span")

    def __init__(self, span: Span, partition: int, offsets: Sequence[int], started: int, single: bool) -> None:
        self.span = span
        self.partition = partition
        #: Offsets whose outcome (after_message) has not come yet; the span ends when none is left.
        self.awaited = set(offsets)
        #: Where the next receiver span starts, in nanoseconds since the epoch.
        self.cursor = started
        #: When the dispatch ended: the end of a span whose outcomes never came.
        self.dispatched = started
        self.ended = False
        self.single = single


class Tracing(ConsumerHooks):
    """Records an OpenTelemetry consumer span per message (or batch) attempt, and a child per receiver call."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer(TRACER_NAME, __version__, tracer_provider)
        #: The attempt of this thread (the loop's, or a worker's) whose receivers and outcome come next.
        self._local = threading.local()
        #: Every attempt not ended yet, for after_stop.
        self._open: dict[int, _Attempt] = {}
        self._lock = threading.Lock()

    @contextmanager
    def dispatching(self, consumer: ConsumerView, message: Message) -> Iterator[None]:
        """Open the message's consumer span, child of its producer's, and make it current for the receivers."""
        attributes = destination_attributes(consumer.config, message.topic, message.partition)
        attributes.update(message_attributes(message))
        parent = producer_context(message.headers)
        with self._attempt(message.topic, parent, attributes, [], message.partition, [message.offset], single=True):
            yield

    @contextmanager
    def dispatching_batch(self, consumer: ConsumerView, messages: Sequence[Message]) -> Iterator[None]:
        """Open the batch's consumer span, a new trace linked to each message's producer, and make it current."""
        first = messages[0]
        attributes = destination_attributes(consumer.config, first.topic, first.partition)
        attributes["messaging.batch.message_count"] = len(messages)
        links = []
        for message in messages:
            context = trace.get_current_span(producer_context(message.headers)).get_span_context()
            if context.is_valid:
                links.append(Link(context, {OFFSET_ATTRIBUTE: message.offset}))
        offsets = [message.offset for message in messages]
        root = otel_context.Context()
        with self._attempt(first.topic, root, attributes, links, first.partition, offsets, single=False):
            yield

    @contextmanager
    def _attempt(
        self,
        topic: str,
        parent: otel_context.Context,
        attributes: dict[str, Any],
        links: list[Link],
        partition: int,
        offsets: list[int],
        single: bool,
    ) -> Iterator[None]:
        """The span of one attempt around the dispatch; kept open for the receivers' spans and the outcomes."""
        self._end_left_over()
        started = time.time_ns()
        span = self._tracer.start_span(
            f"{OPERATION} {topic}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
            start_time=started,
        )
        attempt = _Attempt(span, partition, offsets, started, single)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield
        except BaseException as error:  # the dispatcher catches receivers' errors: this is the engine's own
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.end()
            raise
        finally:
            otel_context.detach(token)
        attempt.dispatched = time.time_ns()
        self._local.attempt = attempt
        with self._lock:
            self._open[id(attempt)] = attempt

    def after_receiver(self, consumer: ConsumerView, receiver: str, seconds: float, error: Exception | None) -> None:
        """A child span for the receiver call, placed after the previous one; with the exception it raised."""
        attempt: _Attempt | None = getattr(self._local, "attempt", None)
        if attempt is None:
            return
        start = attempt.cursor
        end = attempt.cursor = start + int(seconds * 1e9)
        parent = trace.set_span_in_context(attempt.span)
        attributes = {"code.function.name": receiver}
        span = self._tracer.start_span(
            receiver, context=parent, kind=SpanKind.INTERNAL, attributes=attributes, start_time=start
        )
        if error is not None:
            for failed in (span, attempt.span):
                failed.set_attribute("error.type", error_type(error))
                failed.set_status(Status(StatusCode.ERROR, f"receiver {receiver} raised {type(error).__name__}"))
            span.record_exception(error, timestamp=end)
        span.end(end_time=end)

    def after_message(self, consumer: ConsumerView, raw: KafkaMessage, outcome: str) -> None:
        """Note the outcome of one of the attempt's messages; end the span once every one of them has its own."""
        attempt: _Attempt | None = getattr(self._local, "attempt", None)
        offset = raw.offset()
        if attempt is None or raw.partition() != attempt.partition or offset not in attempt.awaited:
            return  # not dispatched (malformed), or not this thread's attempt
        attempt.awaited.discard(offset)
        span = attempt.span
        if outcome != HANDLED:
            span.add_event(f"kafka_consumer_app.{outcome}", {OFFSET_ATTRIBUTE: offset})
        if outcome == FAILED:
            span.set_status(Status(StatusCode.ERROR, "the consumer stops: the message failed its last attempt"))
        if attempt.single:
            span.set_attribute(OUTCOME_ATTRIBUTE, outcome)
        if not attempt.awaited:
            self._end(attempt, None)

    def after_stop(self, consumer: ConsumerView) -> None:
        """End the spans whose outcomes never came (a batch cut short, a stop), at the end of their dispatch."""
        with self._lock:
            left = list(self._open.values())
        for attempt in left:
            self._end(attempt, attempt.dispatched)

    def _end_left_over(self) -> None:
        """End this thread's previous span if some of its messages had no outcome (the rest of a split batch)."""
        attempt: _Attempt | None = getattr(self._local, "attempt", None)
        if attempt is not None:
            self._end(attempt, attempt.dispatched)

    def _end(self, attempt: _Attempt, end_time: int | None) -> None:
        with self._lock:
            if attempt.ended:
                return
            attempt.ended = True
            self._open.pop(id(attempt), None)
        if getattr(self._local, "attempt", None) is attempt:
            self._local.attempt = None
        attempt.span.end(end_time=end_time)
