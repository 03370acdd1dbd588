"""
Database outages against the real broker, with SQLite: receivers that meet an unavailable database.

A receiver here plays a database outage by raising ``django.db.OperationalError`` (or a class listed in
``DATABASE_ERRORS``) while a switch the test holds is down. The real outages, a PostgreSQL server stopped
under a running consumer, are in tests/test_postgres_outages.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import InterfaceError, OperationalError

from kafka_consumer_app import probe
from kafka_consumer_app.engine.dispatch import ReceiverFailure
from kafka_consumer_app.engine.hooks import OutageState
from kafka_consumer_app.engine.outages import DatabaseErrors, DatabaseOutage
from kafka_consumer_app.exceptions import EXIT_DATABASE_UNAVAILABLE, BatchFailed
from kafka_consumer_app.observers.health import Heartbeat
from kafka_consumer_app.observers.metrics import ConsumerMetrics
from kafka_consumer_app.settings import topics
from kafka_consumer_app.settings.outages import OutageConfig
from kafka_consumer_app.signals import batch_signal, topic_signal
from kafka_consumer_app.testing.broker import free_port

from .kafka_utils import committed, produce, wait_for
from .test_health_http import answered, get

pytestmark = pytest.mark.django_db


class ReplicaDown(Exception):
    """A project's own exception for a database it cannot reach (listed in DATABASE_ERRORS by a test)."""


def failure(error: Exception) -> ReceiverFailure:
    return ReceiverFailure(topic_signal("outages"), print, error)


# -- classification and backoff (no broker) ------------------------------------------------------------


@pytest.mark.parametrize("error", [OperationalError("server closed the connection"), InterfaceError("closed")])
def test_django_connection_level_errors_are_an_outage(error):
    assert DatabaseErrors().caused([failure(error)])


def test_an_ordinary_error_is_not_an_outage():
    assert not DatabaseErrors().caused([failure(ValueError("bad payload"))])


def test_an_error_raised_from_a_connection_error_or_a_batch_failed_caused_by_one_is_an_outage():
    try:
        try:
            raise OperationalError("could not connect")
        except OperationalError as cause:
            raise RuntimeError("saving the order failed") from cause
    except RuntimeError as wrapped:
        chained = wrapped

    assert DatabaseErrors().caused([failure(chained)])
    assert DatabaseErrors().caused([failure(BatchFailed(3, OperationalError("gone")))])


def test_an_outage_wins_over_the_other_receivers_errors():
    assert DatabaseErrors().caused([failure(ValueError("bad")), failure(OperationalError("down"))])


def test_a_class_listed_in_database_errors_is_an_outage():
    assert not DatabaseErrors().caused([failure(ReplicaDown())])
    assert DatabaseErrors(["tests.test_database_outages.ReplicaDown"]).caused([failure(ReplicaDown())])


def test_the_waits_double_from_half_a_second_to_five_and_end_at_the_timeout():
    now = [0.0]
    outage = DatabaseOutage(OutageConfig(timeout=20.0), clock=lambda: now[0])
    waits = []
    for _ in range(8):
        delay, _elapsed = outage.wait([failure(OperationalError("down"))])
        waits.append(delay)
        now[0] += delay or 0.0

    assert waits == [0.5, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 2.0]
    assert outage.wait([failure(OperationalError("down"))]) == (None, 20.0)


def test_an_outage_is_reported_when_it_begins_and_when_the_database_answers():
    reports: list[OutageState] = []
    now = [0.0]
    outage = DatabaseOutage(OutageConfig(), emit=lambda name, state: reports.append(state), clock=lambda: now[0])

    outage.wait([failure(OperationalError("server closed the connection\nunexpectedly"))])
    now[0] = 7.0
    outage.answered()
    outage.answered()

    assert [(r.down, r.seconds) for r in reports] == [(True, 0.0), (False, 7.0)]
    assert reports[0].error == "OperationalError: server closed the connection" and not outage.active


def test_the_heartbeat_file_says_the_database_is_out_and_the_probe_shows_it_and_still_passes(tmp_path, capsys):
    path = str(tmp_path / "consumer.heartbeat")
    heartbeat = Heartbeat(path)
    heartbeat.before_start(None)

    heartbeat.after_database_outage(None, OutageState(True, 3.0, "OperationalError: connection refused", 300.0))
    heartbeat.after_poll(None)
    during = (probe.main(["--file", path]), capsys.readouterr().out)
    heartbeat.after_database_outage(None, OutageState(False, 9.0, "OperationalError: connection refused", 300.0))
    after = (probe.main(["--file", path]), capsys.readouterr().out)

    assert during[0] == 0 and "not ready: database unavailable since" in during[1] and "refused" in during[1]
    assert after[0] == 0 and "database" not in after[1]


def test_the_outage_gauge_is_1_during_an_outage_and_its_seconds_add_up():
    metrics = ConsumerMetrics("orders")

    def sample(name: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"topic": "orders"})

    before = sample("kafka_consumer_database_outage")
    for seconds in (0.0, 3.0, 5.0):
        metrics.after_database_outage(None, OutageState(True, seconds, "OperationalError: down", 300.0))
    during = sample("kafka_consumer_database_outage")
    metrics.after_database_outage(None, OutageState(False, 7.0, "OperationalError: down", 300.0))

    assert (before, during, sample("kafka_consumer_database_outage")) == (0.0, 1.0, 0.0)
    assert sample("kafka_consumer_database_outage_seconds_total") == 7.0


def test_database_errors_must_be_a_list_of_exception_classes(settings):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "DATABASE_ERRORS": ["no_such_module_xyz.Down", "os.path"]}

    found = [problem for problem in topics.problems() if problem.id == "kafka_consumer_app.E090"]

    assert [("no_such_module_xyz.Down" in p.msg, "os.path" in p.msg) for p in found] == [(True, False), (False, True)]


@pytest.mark.parametrize("value", [0, -1, "300", True, None])
def test_the_outage_timeout_must_be_a_positive_number_of_seconds(settings, value):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "DATABASE_OUTAGE_TIMEOUT": value}

    assert [problem.id for problem in topics.problems()] == ["kafka_consumer_app.E091"]


def test_a_bad_database_errors_path_stops_the_command_with_one_line_and_exit_1(settings):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "DATABASE_ERRORS": "psycopg.OperationalError"}

    with pytest.raises(CommandError) as raised:
        call_command("consume_events", topic="orders")

    assert raised.value.returncode == 1 and "DATABASE_ERRORS" in str(raised.value) and "\n" not in str(raised.value)


# -- against the broker -------------------------------------------------------------------------------


class Database:
    """The switch a test flips: while ``down``, every receiver call raises as an unavailable database would."""

    def __init__(self, error: Callable[[], Exception] = lambda: OperationalError("connection refused")) -> None:
        self.down = True
        self.error = error
        self.failed = 0
        self._lock = threading.Lock()

    def query(self) -> None:
        """What a receiver's database call does: raise while the database is down."""
        if self.down:
            with self._lock:
                self.failed += 1
            raise self.error()


@pytest.fixture
def connect():
    """Connect per-message or batch receivers for one test and disconnect them afterwards."""
    connected = []

    def do_connect(signal, function):
        signal.connect(function, weak=False)
        connected.append((signal, function))
        return function

    yield do_connect
    for signal, function in connected:
        signal.disconnect(function)


def configure(settings, topic: str, top: dict[str, Any] | None = None, **overrides: Any) -> None:
    """The topic parks in its dead-letter topic after 2 tries, and trips the breaker after 2 failed messages."""
    settings.KAFKA_CONSUMER = {
        **settings.KAFKA_CONSUMER,
        **(top or {}),
        "TOPICS": {
            topic: {
                "FAILURE_POLICY": "dead-letter",
                "CIRCUIT_BREAKER": 2,
                "RETRY": {"ATTEMPTS": 2, "INITIAL_BACKOFF": 0.1},
                **overrides,
            }
        },
    }


def parked(bootstrap: str, topic: str) -> int:
    """How many messages the dead-letter topic of ``topic`` holds."""
    client = Consumer({"bootstrap.servers": bootstrap, "group.id": "parked-count"})
    try:
        low, high = client.get_watermark_offsets(TopicPartition(f"{topic}-dlt", 0), timeout=10)
    finally:
        client.close()
    return high - low


class Run:
    """``call_command("consume_events", ...)`` on a thread, so that the test can watch it and flip switches."""

    def __init__(self, **options: Any) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, kwargs=options, daemon=True)
        self.thread.start()

    def _run(self, **options: Any) -> None:
        try:
            call_command("consume_events", **options)
        except BaseException as error:
            self.error = error

    def join(self, timeout: float) -> BaseException | None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"consume_events still running after {timeout:g}s"
        return self.error


@pytest.fixture
def outage_topic(kafka_broker, make_topic) -> Iterator[Callable[..., str]]:
    def make(partitions: int = 1) -> str:
        topic = make_topic(partitions=partitions)
        kafka_broker.create_topic(f"{topic}-dlt")
        return topic

    yield make


def ride_out_outage(port: int, database: Database, run: Run, tries: int = 3) -> str:
    """Wait until /readyz says the database is out and ``tries`` calls met it, bring it back; the 503 body."""

    def outage_reported() -> str | None:
        answer = answered(port, "/readyz", 503)
        return answer[1] if answer and "database unavailable" in answer[1] else None

    body = wait_for(outage_reported, timeout=30, what="/readyz to report the database outage")
    metrics = get(port, "/metrics")
    assert metrics is not None and "kafka_consumer_database_outage{" in metrics[1]
    # The outage lasts: the receivers keep meeting it (every 0.5 s, then 1 s, 2 s...), and nothing is parked.
    wait_for(lambda: database.failed >= tries, timeout=30, what=f"{tries} calls to meet the outage")
    assert run.thread.is_alive(), "the consumer stopped during the outage"
    database.down = False
    return body


@pytest.mark.broker
def test_messages_that_meet_an_outage_are_handled_after_it_with_nothing_parked_and_the_breaker_untouched(
    kafka_settings, kafka_broker, outage_topic, connect
):
    topic = outage_topic(partitions=2)
    configure(kafka_settings, topic)
    database, handled = Database(), []

    def receiver(sender, message, **kwargs):
        database.query()
        handled.append((message.partition, message.offset))

    connect(topic_signal(topic), receiver)
    for partition in (0, 1):
        produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(3)], partition=partition)
    port = free_port()

    run = Run(topic=topic, max_messages=6, health_port=port)
    body = ride_out_outage(port, database, run)

    assert run.join(60) is None
    assert "not ready: database unavailable" in body
    assert sorted(handled) == sorted(set(handled)) and len(handled) == 6
    assert database.failed >= 3, "the outage was not met more than once"
    assert parked(kafka_broker.bootstrap_servers, topic) == 0
    group = kafka_settings.KAFKA_CONSUMER["GROUP_ID"]
    assert committed(kafka_broker.bootstrap_servers, group, topic, 2) == {0: 3, 1: 3}


@pytest.mark.broker
def test_a_database_down_past_the_outage_timeout_exits_6_without_committing_and_a_restart_handles_the_message(
    kafka_settings, kafka_broker, outage_topic, connect
):
    topic = outage_topic()
    configure(kafka_settings, topic, top={"DATABASE_OUTAGE_TIMEOUT": 3})
    database, handled = Database(), []

    def receiver(sender, message, **kwargs):
        if message.offset == 1:
            database.query()
        handled.append(message.offset)

    connect(topic_signal(topic), receiver)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": 0}, {"n": 1}])
    group = kafka_settings.KAFKA_CONSUMER["GROUP_ID"]
    started = time.monotonic()

    with pytest.raises(CommandError) as raised:
        call_command("consume_events", topic=topic, max_messages=2)

    took = time.monotonic() - started
    line = str(raised.value)
    assert raised.value.returncode == EXIT_DATABASE_UNAVAILABLE, line
    assert "\n" not in line and "database was unavailable" in line and f"{topic}[0]@1" in line, line
    assert 3 <= took < 20, took
    assert committed(kafka_broker.bootstrap_servers, group, topic, 1) == {0: 1}
    assert parked(kafka_broker.bootstrap_servers, topic) == 0

    database.down = False
    call_command("consume_events", topic=topic, max_messages=1)

    assert handled == [0, 1]
    assert committed(kafka_broker.bootstrap_servers, group, topic, 1) == {0: 2}


@pytest.mark.broker
def test_a_class_listed_in_database_errors_waits_for_the_database_instead_of_being_parked(
    kafka_settings, kafka_broker, outage_topic, connect
):
    topic = outage_topic()
    configure(kafka_settings, topic, top={"DATABASE_ERRORS": ["tests.test_database_outages.ReplicaDown"]})
    database, handled = Database(error=lambda: ReplicaDown("replica unreachable")), []

    def receiver(sender, message, **kwargs):
        database.query()
        handled.append(message.offset)

    connect(topic_signal(topic), receiver)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(3)])
    port = free_port()

    run = Run(topic=topic, max_messages=3, health_port=port)
    ride_out_outage(port, database, run)

    assert run.join(60) is None
    assert handled == [0, 1, 2] and parked(kafka_broker.bootstrap_servers, topic) == 0


@pytest.mark.broker
def test_an_ordinary_exception_still_uses_its_retries_and_goes_to_the_dead_letter_topic(
    kafka_settings, kafka_broker, outage_topic, connect
):
    topic = outage_topic()
    configure(kafka_settings, topic, CIRCUIT_BREAKER=None)
    tries = []

    def receiver(sender, message, **kwargs):
        tries.append(message.offset)
        if message.offset == 0:
            raise ValueError("cannot apply this event")

    connect(topic_signal(topic), receiver)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": 0}, {"n": 1}])

    call_command("consume_events", topic=topic, max_messages=2)

    assert tries == [0, 0, 1]
    assert parked(kafka_broker.bootstrap_servers, topic) == 1


@pytest.mark.broker
def test_workers_wait_for_the_database_and_handle_every_message_after_the_outage(
    kafka_settings, kafka_broker, outage_topic, connect
):
    topic = outage_topic(partitions=2)
    configure(kafka_settings, topic, CONCURRENCY=4, ORDERING="key")
    database, handled, lock = Database(), [], threading.Lock()

    def receiver(sender, message, **kwargs):
        database.query()
        with lock:
            handled.append((message.partition, message.offset))

    connect(topic_signal(topic), receiver)
    count = 40
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(count)], key=lambda i: f"k{i % 8}")
    port = free_port()

    run = Run(topic=topic, max_messages=count, health_port=port)
    ride_out_outage(port, database, run)

    assert run.join(60) is None
    assert len(set(handled)) == count and len(handled) == count
    assert database.failed <= 40, f"{database.failed} tries met the outage: messages not tried yet did not wait"
    assert parked(kafka_broker.bootstrap_servers, topic) == 0


@pytest.mark.broker
def test_a_batch_receiver_waits_for_the_database_and_handles_the_whole_batch_after_the_outage(
    kafka_settings, kafka_broker, outage_topic, connect
):
    topic = outage_topic()
    configure(kafka_settings, topic, BATCH_SIZE=10, BATCH_WAIT=0.2)
    database, batches = Database(), []

    def receiver(sender, messages, **kwargs):
        database.query()
        batches.append([message.offset for message in messages])

    connect(batch_signal(topic), receiver)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(25)])
    port = free_port()

    run = Run(topic=topic, max_messages=25, health_port=port)
    ride_out_outage(port, database, run)

    assert run.join(60) is None
    assert sorted(offset for batch in batches for offset in batch) == list(range(25))
    assert parked(kafka_broker.bootstrap_servers, topic) == 0


@pytest.mark.broker
def test_time_spent_waiting_for_the_database_is_not_idleness(kafka_settings, kafka_broker, outage_topic, connect):
    topic = outage_topic()
    configure(kafka_settings, topic)
    database, handled = Database(), []

    def receiver(sender, message, **kwargs):
        database.query()
        handled.append(message.offset)

    connect(topic_signal(topic), receiver)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": 0}])
    threading.Timer(2.5, lambda: setattr(database, "down", False)).start()

    call_command("consume_events", topic=topic, idle_timeout=2)

    assert handled == [0]
