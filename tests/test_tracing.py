"""
OpenTelemetry tracing (TRACING "opentelemetry"): spans read back from the SDK's InMemorySpanExporter.

The consumer runs in this process (``call_command`` with ``--max-messages``) against the real broker,
so the spans it ends reach the exporter of the tracer provider set here. Producers inject their
span's context into the message headers as an instrumented service would (``propagate.inject``).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from confluent_kafka import Message as KafkaMessage
from confluent_kafka import Producer
from django.core.management import call_command
from django.core.management.base import CommandError
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from kafka_consumer_app import composition
from kafka_consumer_app.engine.delivery import Delivery
from kafka_consumer_app.engine.dispatch import Dispatcher
from kafka_consumer_app.engine.hooks import ConsumerHooks, HookEmitter
from kafka_consumer_app.engine.records import MessageConverter, locate
from kafka_consumer_app.observers.tracing import Tracing
from kafka_consumer_app.settings import topics
from kafka_consumer_app.settings.topics import get_topic_config
from kafka_consumer_app.signals import batch_signal, topic_signal

from .kafka_utils import ROOT, manage_env, report_figures

#: The provider of this test process; OpenTelemetry allows setting the global one once.
EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(PROVIDER)
PRODUCER_TRACER = PROVIDER.get_tracer("tests.producer")


@pytest.fixture
def spans():
    """The exporter, emptied before and after the test."""
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


@pytest.fixture
def traced(kafka_settings):
    """TRACING 'opentelemetry' on top of the local broker's settings."""
    kafka_settings.KAFKA_CONSUMER = {**kafka_settings.KAFKA_CONSUMER, "TRACING": "opentelemetry"}
    return kafka_settings


@pytest.fixture
def connect():
    """Connect receivers (``connect(signal, function)``) for one test, and disconnect them afterwards."""
    connected = []

    def do_connect(signal, function):
        signal.connect(function, weak=False)
        connected.append((signal, function))
        return function

    yield do_connect
    for signal, function in connected:
        signal.disconnect(function)


def produce_traced(servers: str, topic: str, count: int, traced: bool = True, **headers: bytes) -> list:
    """Produce ``count`` messages to partition 0, each inside a producer span of its own whose context the
    headers carry (unless not ``traced``); return those spans' contexts (None for untraced messages)."""
    producer = Producer({"bootstrap.servers": servers})
    contexts = []
    for index in range(count):
        carrier: dict[str, str] = {}
        if traced:
            with PRODUCER_TRACER.start_as_current_span(f"send {topic}", kind=SpanKind.PRODUCER) as span:
                propagate.inject(carrier)
                contexts.append(span.get_span_context())
        else:
            contexts.append(None)
        pairs = [(name, value.encode()) for name, value in carrier.items()] + list(headers.items())
        producer.produce(topic, f'{{"n": {index}}}'.encode(), key=f"key-{index}", partition=0, headers=pairs)
    assert producer.flush(30) == 0
    return contexts


def consumer_spans(exporter, topic):
    return [span for span in exporter.get_finished_spans() if span.name == f"process {topic}"]


def children_of(exporter, parent):
    return [span for span in exporter.get_finished_spans() if span.parent and span.parent.span_id == parent.span_id]


# -- against the broker --------------------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.django_db
def test_the_consumer_span_continues_the_producers_trace_with_the_messaging_attributes(
    traced, make_topic, spans, connect
):
    topic = make_topic()
    (producer,) = produce_traced(traced.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"], topic, 1, ce_id=b"evt-7")
    current = []
    connect(topic_signal(topic), lambda sender, message, **kwargs: current.append(trace.get_current_span()))

    call_command("consume_events", topic=topic, max_messages=1)

    (span,) = consumer_spans(spans, topic)
    assert span.kind == SpanKind.CONSUMER
    assert (span.context.trace_id, span.parent.span_id) == (producer.trace_id, producer.span_id)
    assert span.parent.is_remote
    assert dict(span.attributes) == {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.consumer.group.name": traced.KAFKA_CONSUMER["GROUP_ID"],
        "messaging.destination.partition.id": "0",
        "messaging.kafka.offset": 0,
        "messaging.message.id": "evt-7",
        "kafka_consumer_app.outcome": "handled",
    }
    assert [found.get_span_context().span_id for found in current] == [span.context.span_id]


@pytest.mark.broker
@pytest.mark.django_db
def test_each_receiver_call_is_a_child_span_named_after_the_receiver_within_the_consumer_span(
    traced, make_topic, spans, connect
):
    topic = make_topic()
    produce_traced(traced.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"], topic, 1)

    def save_order(sender, message, **kwargs):
        time.sleep(0.01)  # long enough for the spans to have a measurable order; nothing waits on it

    def notify(sender, message, **kwargs):
        pass

    connect(topic_signal(topic), save_order)
    connect(topic_signal(topic), notify)

    call_command("consume_events", topic=topic, max_messages=1)

    (span,) = consumer_spans(spans, topic)
    children = children_of(spans, span.context)
    assert [child.name for child in children] == [
        f"{__name__}.{save_order.__qualname__}",
        f"{__name__}.{notify.__qualname__}",
    ]
    assert all(child.kind == SpanKind.INTERNAL and child.status.is_ok for child in children)
    assert all(child.context.trace_id == span.context.trace_id for child in children)
    assert span.start_time <= children[0].start_time <= children[0].end_time <= children[1].start_time
    assert children[1].end_time <= span.end_time
    assert children[0].end_time - children[0].start_time >= 10_000_000


@pytest.mark.broker
@pytest.mark.django_db
def test_a_failing_receiver_records_its_exception_and_each_retry_and_the_dead_letter_are_visible(
    traced, kafka_broker, make_topic, spans, connect
):
    topic = make_topic()
    kafka_broker.create_topic(f"{topic}-dlt")
    traced.KAFKA_CONSUMER = {
        **traced.KAFKA_CONSUMER,
        "FAILURE_POLICY": "dead-letter",
        "RETRY": {"ATTEMPTS": 2, "INITIAL_BACKOFF": 0.1},
    }
    (producer,) = produce_traced(kafka_broker.bootstrap_servers, topic, 1)

    def charge_card(sender, message, **kwargs):
        raise ValueError("card declined")

    connect(topic_signal(topic), charge_card)

    call_command("consume_events", topic=topic, max_messages=1)

    attempts = sorted(consumer_spans(spans, topic), key=lambda span: span.start_time)
    assert [span.parent.span_id for span in attempts] == [producer.span_id] * 2
    assert [span.attributes["kafka_consumer_app.outcome"] for span in attempts] == ["retried", "dead_lettered"]
    assert [[event.name for event in span.events] for span in attempts] == [
        ["kafka_consumer_app.retried"],
        ["kafka_consumer_app.dead_lettered"],
    ]
    for span in attempts:
        assert span.status.status_code == StatusCode.ERROR and span.attributes["error.type"] == "ValueError"
        (receiver,) = children_of(spans, span.context)
        assert receiver.status.status_code == StatusCode.ERROR
        (exception,) = receiver.events
        assert exception.name == "exception"
        assert (exception.attributes["exception.type"], exception.attributes["exception.message"]) == (
            "ValueError",
            "card declined",
        )
        assert "charge_card" in exception.attributes["exception.stacktrace"]


@pytest.mark.broker
@pytest.mark.django_db
def test_with_worker_threads_each_message_span_has_its_own_producer_as_parent(traced, make_topic, spans, connect):
    topic = make_topic()
    traced.KAFKA_CONSUMER = {**traced.KAFKA_CONSUMER, "CONCURRENCY": 4, "ORDERING": "none"}
    producers = produce_traced(traced.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"], topic, 12)

    def slow(sender, message, **kwargs):
        time.sleep(0.02)  # keeps several workers busy at once

    connect(topic_signal(topic), slow)

    call_command("consume_events", topic=topic, max_messages=12)

    found = consumer_spans(spans, topic)
    parents = {span.attributes["messaging.kafka.offset"]: span.parent.span_id for span in found}
    assert parents == {offset: context.span_id for offset, context in enumerate(producers)}
    for span in found:
        (receiver,) = children_of(spans, span.context)
        assert receiver.start_time >= span.start_time and receiver.end_time <= span.end_time


@pytest.mark.broker
@pytest.mark.django_db
def test_a_message_without_traceparent_starts_a_new_trace(traced, make_topic, spans, connect):
    topic = make_topic()
    produce_traced(traced.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"], topic, 1, traced=False)
    connect(topic_signal(topic), lambda sender, message, **kwargs: None)

    with PRODUCER_TRACER.start_as_current_span("unrelated span of the calling code"):
        call_command("consume_events", topic=topic, max_messages=1)

    (span,) = consumer_spans(spans, topic)
    assert span.parent is None and span.context.is_valid


@pytest.mark.broker
@pytest.mark.django_db
def test_a_batch_is_one_span_linked_to_each_producer_with_its_receiver_as_a_child(traced, make_topic, spans, connect):
    topic = make_topic()
    traced.KAFKA_CONSUMER = {**traced.KAFKA_CONSUMER, "BATCH_SIZE": 4, "BATCH_WAIT": 30}
    servers = traced.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"]
    producers = produce_traced(servers, topic, 3) + produce_traced(servers, topic, 1, traced=False)

    def index_orders(sender, messages, **kwargs):
        pass

    connect(batch_signal(topic), index_orders)

    call_command("consume_events", topic=topic, max_messages=4)

    (span,) = consumer_spans(spans, topic)
    assert span.parent is None and span.kind == SpanKind.CONSUMER
    assert span.attributes["messaging.batch.message_count"] == 4
    assert "messaging.kafka.offset" not in span.attributes
    assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [
        (context.trace_id, context.span_id) for context in producers[:3]
    ]
    assert [link.attributes["messaging.kafka.offset"] for link in span.links] == [0, 1, 2]
    assert [child.name for child in children_of(spans, span.context)] == [f"{__name__}.{index_orders.__qualname__}"]


# -- settings and cost ---------------------------------------------------------------------------


def test_e140_tracing_names_the_one_backend_there_is(settings):
    settings.KAFKA_CONSUMER = {"BOOTSTRAP_SERVERS": "kafka-1:9092", "GROUP_ID": "svc", "TRACING": "jaeger"}
    assert [problem.id for problem in topics.problems()] == ["kafka_consumer_app.E140"]


def test_e141_tracing_without_opentelemetry_stops_the_command_with_one_line_naming_the_extra(
    settings, monkeypatch, connect
):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "TRACING": "opentelemetry"}
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)  # as importlib sees a missing module
    connect(topic_signal("orders"), lambda sender, message, **kwargs: None)

    with pytest.raises(CommandError) as raised:
        call_command("consume_events", topic="orders", max_messages=1)

    text = str(raised.value)
    assert "\n" not in text and "E141" in text and "pip install 'kafka_consumer_app[otel]'" in text, text


def test_with_tracing_off_building_a_consumer_imports_no_opentelemetry():
    script = (
        "import sys, django; django.setup()\n"
        "from kafka_consumer_app.composition import ConsumerSpec, build_consumer\n"
        "from kafka_consumer_app.engine.shutdown import StopRequest\n"
        "build_consumer(ConsumerSpec(topic='orders'), StopRequest())\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'opentelemetry'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=manage_env(), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_tracing_is_a_hook_only_when_the_setting_asks_for_it(settings):
    assert not any(isinstance(hook, Tracing) for hook in composition.hooks_for(get_topic_config("orders")))
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "TRACING": "opentelemetry"}
    assert any(isinstance(hook, Tracing) for hook in composition.hooks_for(get_topic_config("orders")))


class _View:
    def __init__(self, config):
        self.config = config


class _Watch:
    def begin(self, what):
        pass

    def end(self):
        pass


def _per_message_seconds(hooks: list[ConsumerHooks], raws: list[KafkaMessage]) -> float:
    """Seconds per message of converting and dispatching ``raws`` to one no-op receiver, with ``hooks``."""
    config = get_topic_config("orders")
    emitter = HookEmitter(hooks, _View(config))
    dispatcher = Dispatcher(config.topic, sender=object(), timed=emitter.wants("after_receiver"))
    delivery = Delivery(MessageConverter(config), dispatcher, emitter)
    started = time.perf_counter()
    for raw in raws:
        delivery.attempt(raw, locate(raw), None, _Watch())
        emitter.emit("after_message", raw, "handled")
    return (time.perf_counter() - started) / len(raws)


def test_figures_the_per_message_cost_of_tracing_off_and_on(spans, connect):
    connect(topic_signal("orders"), lambda sender, message, **kwargs: None)
    raws = [
        KafkaMessage(topic="orders", partition=0, offset=offset, key=b"k", value=b"{}", headers=[])
        for offset in range(5000)
    ]
    _per_message_seconds([], raws[:500])  # warm up
    off = min(_per_message_seconds([], raws) for _ in range(3))
    noop = min(_per_message_seconds([Tracing(trace.NoOpTracerProvider())], raws) for _ in range(3))
    on = min(_per_message_seconds([Tracing(PROVIDER)], raws) for _ in range(3))
    assert len(consumer_spans(spans, "orders")) == 3 * len(raws)
    report_figures(
        f"FIGURES tracing per-message: off={off * 1e6:.1f}us on(no-op provider)={noop * 1e6:.1f}us "
        f"on(sdk, in-memory exporter)={on * 1e6:.1f}us (convert + dispatch to one no-op receiver, "
        f"{len(raws)} messages, best of 3)"
    )
