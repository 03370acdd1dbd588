"""
Pausing from the admin console: the control row, as consumers carry it out (ADR 11).

With a fake client: the pause of every assigned partition, the retries' and the workers' resumes
held back during it, what a Resume leaves paused, an unreadable row. On the real broker: a running
consumer stops handling within CONTROL_INTERVAL + POLL_TIMEOUT of the row's change, handles nothing
while paused (messages go on arriving), says so in its readiness, and after the Resume handles
every message once; a consumer that starts paused keeps its newly assigned partitions paused.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from confluent_kafka import Producer, TopicPartition
from django.db import OperationalError
from django.utils import timezone

from kafka_consumer_app.engine.consumer import EventConsumer, RunOptions
from kafka_consumer_app.engine.control import OperatorPause
from kafka_consumer_app.engine.hooks import ControlState
from kafka_consumer_app.engine.records import Location
from kafka_consumer_app.engine.retries import RetryScheduler
from kafka_consumer_app.engine.shutdown import StopRequest
from kafka_consumer_app.models import ConsumerControl
from kafka_consumer_app.observers.health import HealthServer
from kafka_consumer_app.settings.topics import get_topic_config

from .kafka_utils import produce, report_figures, wait_for
from .test_failures import configure, connect

__all__ = ["connect"]  # a fixture, used by name

TOPIC = "orders"


@dataclass
class FakeClient:
    """What the pause asks of a client: the assignment, pause and resume, as calls recorded."""

    partitions: list[int]
    paused: set[int] = field(default_factory=set)
    calls: list[tuple[str, list[int]]] = field(default_factory=list)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, number) for number in self.partitions]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("pause", [p.partition for p in partitions]))
        self.paused |= {p.partition for p in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("resume", [p.partition for p in partitions]))
        self.paused -= {p.partition for p in partitions}

    def seek(self, partition: TopicPartition) -> None:
        pass


class Row:
    """A control row the test sets; reading it can be made to fail."""

    def __init__(self) -> None:
        self.state: ControlState | None = None
        self.error: Exception | None = None

    def read(self, kafka_topic: str) -> ControlState | None:
        if self.error is not None:
            raise self.error
        return self.state


def make_pause(settings, row: Row) -> tuple[OperatorPause, list[ControlState]]:
    """An OperatorPause that reads ``row`` at every check (its interval past at once), and what it emitted."""
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "CONTROL_INTERVAL": 5}
    emitted: list[ControlState] = []
    now = {"t": 0.0}

    def clock() -> float:
        now["t"] += 10.0
        return now["t"]

    pause = OperatorPause(get_topic_config(TOPIC), lambda _name, state: emitted.append(state), row.read, clock)
    return pause, emitted


def test_a_paused_row_pauses_every_assigned_partition_and_a_resume_resumes_them(settings):
    row, client = Row(), FakeClient([0, 1, 2])
    pause, emitted = make_pause(settings, row)

    pause.check(client)
    row.state = ControlState(True, "alice", "2026-12-01T10:00:00+00:00")
    pause.check(client)
    paused_then = set(client.paused)
    row.state = ControlState(False, "bob")
    pause.check(client)

    assert paused_then == {0, 1, 2} and client.paused == set()
    assert [state.paused for state in emitted] == [True, False]
    assert "alice" in emitted[0].describe() and "paused" in emitted[0].describe()


def test_a_due_retry_does_not_resume_its_partition_during_a_pause_and_resumes_with_the_others(settings):
    row, client = Row(), FakeClient([0, 1])
    pause, _ = make_pause(settings, row)
    retries = RetryScheduler(TOPIC, resume=pause.resume)
    pause.holders.append(retries.paused_partitions)
    retries.schedule(client, Location(TOPIC, 0, 7), 1, [], delay=0.0)  # due at once
    row.state = ControlState(True, "alice")
    pause.check(client)

    retries.resume_due(client)
    during = set(client.paused)
    row.state = ControlState(False, "alice")
    pause.check(client)

    assert during == {0, 1}, "the retry's resume undid the operator's pause"
    assert client.paused == set()


def test_a_resume_leaves_paused_the_partitions_a_retry_still_waits_on(settings):
    row, client = Row(), FakeClient([0, 1])
    pause, _ = make_pause(settings, row)
    retries = RetryScheduler(TOPIC, resume=pause.resume)
    pause.holders.append(retries.paused_partitions)
    row.state = ControlState(True, "alice")
    pause.check(client)
    retries.schedule(client, Location(TOPIC, 1, 3), 1, [], delay=3600.0)

    row.state = ControlState(False, "alice")
    pause.check(client)

    assert client.paused == {1}


def test_partitions_assigned_during_a_pause_are_paused_and_revoked_ones_resumed_on_their_way_out(settings):
    row, client = Row(), FakeClient([0])
    pause, _ = make_pause(settings, row)
    row.state = ControlState(True, "alice")
    pause.check(client)

    pause.assigned(client, [TopicPartition(TOPIC, 1)])
    assert client.paused == {0, 1}
    pause.revoked(client, [TopicPartition(TOPIC, 1)])
    assert client.paused == {0}


@pytest.mark.django_db  # the broken connection is closed, if it is
def test_an_unreadable_row_keeps_the_last_state_with_one_warning(settings, caplog):
    row, client = Row(), FakeClient([0, 1])
    pause, _ = make_pause(settings, row)
    row.state = ControlState(True, "alice")
    pause.check(client)

    row.error = OperationalError("no such table: kafka_consumer_app_consumercontrol")
    with caplog.at_level(logging.WARNING, logger="kafka_consumer_app.engine.control"):
        for _ in range(3):
            pause.check(client)

    warnings = [r.getMessage() for r in caplog.records if "control row" in r.getMessage()]
    assert pause.paused and client.paused == {0, 1}
    assert len(warnings) == 1 and "goes on paused" in warnings[0], warnings


def test_readiness_stays_ready_and_says_paused(settings):
    health = HealthServer("127.0.0.1", 0, 60)
    health.after_assign(None, [0, 1])  # type: ignore[arg-type]
    health.after_control(None, ControlState(True, "alice", "2026-12-01T10:00:00+00:00"))  # type: ignore[arg-type]
    ready, reason = health.readiness.check()
    health.after_control(None, ControlState(False, "alice"))  # type: ignore[arg-type]

    assert ready and "paused from the admin console by alice" in reason and "[0, 1]" in reason
    assert "paused" not in health.readiness.check()[1]


# -- against the broker ------------------------------------------------------------------------

#: CONTROL_INTERVAL of the broker tests, and what the bound adds for slow machines.
INTERVAL = 2.0
MARGIN = 3.0


def set_paused(kafka_topic: str, paused: bool) -> None:
    ConsumerControl.objects.update_or_create(
        topic=kafka_topic, defaults={"paused": paused, "changed_by": "tester", "changed_at": timezone.now()}
    )


class Handled:
    """The values a receiver handled, with when."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[int, float]] = []

    def __call__(self, sender, message, **kwargs) -> None:
        with self.lock:
            self.seen.append((message.value["n"], time.monotonic()))

    def count(self) -> int:
        with self.lock:
            return len(self.seen)

    def since(self, moment: float) -> list[int]:
        with self.lock:
            return [n for n, at in self.seen if at > moment]


@pytest.fixture
def running(kafka_settings) -> Iterator:
    """Start an in-process consumer on a thread: ``running(topic, hooks)``; stopped when the test ends."""
    started: list[tuple[StopRequest, threading.Thread]] = []

    def start(topic: str, hooks=()) -> EventConsumer:
        stop = StopRequest()
        consumer = EventConsumer(get_topic_config(topic), RunOptions(), stop=stop, hooks=hooks)
        thread = threading.Thread(target=consumer.run, daemon=True)
        thread.start()
        started.append((stop, thread))
        return consumer

    yield start
    for stop, thread in started:
        stop.set("test over")
        thread.join(30)
        assert not thread.is_alive()


class Producing:
    """A thread that produces a numbered message every ``every`` seconds until stopped."""

    def __init__(self, servers: str, topic: str, every: float = 0.05) -> None:
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(servers, topic, every), daemon=True)

    def _run(self, servers: str, topic: str, every: float) -> None:
        producer = Producer({"bootstrap.servers": servers, "enable.idempotence": True})
        while not self._stop.wait(every):
            producer.produce(topic, json.dumps({"n": self.count}).encode(), key=f"key-{self.count % 7}")
            assert producer.flush(30) == 0
            self.count += 1

    def __enter__(self) -> Producing:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(30)


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_paused_row_stops_handling_within_its_bound_and_the_resume_handles_every_message_once(
    kafka_settings, kafka_broker, make_topic, connect, running, concurrency
):
    topic = make_topic(partitions=3)
    kafka_settings.KAFKA_CONSUMER = {**kafka_settings.KAFKA_CONSUMER, "CONTROL_INTERVAL": INTERVAL}
    configure(kafka_settings, topic, CONCURRENCY=concurrency)
    bound = INTERVAL + kafka_settings.KAFKA_CONSUMER["POLL_TIMEOUT"]
    handled = connect(topic, Handled())
    health = HealthServer("127.0.0.1", 0, 60)
    running(topic, hooks=[health])
    with Producing(kafka_broker.bootstrap_servers, topic) as producing:
        wait_for(lambda: handled.count() >= 20, timeout=60, what="the first messages handled")
        paused_at, produced_before = time.monotonic(), producing.count
        set_paused(topic, True)
        wait_for(lambda: "paused" in health.readiness.check()[1], timeout=bound + MARGIN, what="readiness: paused")
        # Handling stops within the bound: from then on, a window as long again handles nothing.
        stopped_by = paused_at + bound + MARGIN
        wait_for(lambda: time.monotonic() >= stopped_by + bound, timeout=3 * (bound + MARGIN), what="the window")
        last = max(at for _n, at in handled.seen)
        during = handled.since(stopped_by)
        produced_while_paused = producing.count - produced_before
    set_paused(topic, False)
    produced = producing.count
    resumed_at = time.monotonic()
    wait_for(lambda: handled.count() >= produced, timeout=60, what="every message after the resume")
    values = [n for n, _at in handled.seen]
    lost, duplicates = len(set(range(produced)) - set(values)), len(values) - len(set(values))

    report_figures(
        f"FIGURES pause CONCURRENCY={concurrency}: last message handled {last - paused_at:.1f}s after the row "
        f"was set (bound {bound:g}s, asserted with {MARGIN:g}s margin); {len(during)} handled in the "
        f"{bound:g}s window after it, {produced_while_paused} produced since the row was set; resume to all {produced} "
        f"handled in {time.monotonic() - resumed_at:.1f}s; lost {lost}, duplicates {duplicates}"
    )
    assert last - paused_at <= bound + MARGIN
    assert during == [], f"handled while paused: {during}"
    assert lost == 0 and duplicates == 0


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_a_consumer_started_paused_fetches_nothing_from_its_new_partitions_until_resumed(
    kafka_settings, kafka_broker, make_topic, connect, running
):
    topic = make_topic(partitions=2)
    kafka_settings.KAFKA_CONSUMER = {**kafka_settings.KAFKA_CONSUMER, "CONTROL_INTERVAL": INTERVAL}
    handled = connect(topic, Handled())
    set_paused(topic, True)
    health = HealthServer("127.0.0.1", 0, 60)
    running(topic, hooks=[health])
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(30)])
    wait_for(lambda: health.readiness.member, timeout=60, what="the assignment")
    window_end = time.monotonic() + INTERVAL + MARGIN
    wait_for(lambda: time.monotonic() >= window_end, timeout=2 * (INTERVAL + MARGIN), what="the window")
    handled_while_paused = handled.count()

    set_paused(topic, False)
    wait_for(lambda: handled.count() >= 30, timeout=60, what="every message after the resume")

    assert handled_while_paused == 0
    assert sorted(n for n, _at in handled.seen) == list(range(30))
