"""
Database outages for real: the PostgreSQL server stopped under a running ``consume_events`` process.

The consumer runs the example service's ORM receiver (one ``orders_order`` row per message) on a
PostgreSQL database of the suite's server, while a producer keeps producing. The server is stopped
for a while and started again on the same port. Nothing may be lost (every produced order has its
row), nothing parked, and the same process must carry on, unless the outage outlasts
``DATABASE_OUTAGE_TIMEOUT``: then it exits 6 without committing the message in hand, and a restart
handles it. Each test prints a FIGURES line.

The 120 s outage stands for a database failover or a maintenance restart; it takes over two minutes
of the suite's time.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import pytest
from confluent_kafka import Producer

from kafka_consumer_app.exceptions import EXIT_DATABASE_UNAVAILABLE
from kafka_consumer_app.testing.broker import free_port

from .kafka_utils import committed, report_figures, settings_env, wait_for
from .test_database_outages import parked
from .test_health_http import answered

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

#: The example service's settings with its orders app, as ``migrate`` needs them.
ORDERS_SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.settings_orders"}
#: The event type of the example service's ORM receiver (orders.kafka_handlers, not importable here).
ORDER_PLACED = "com.example.order.placed.v1"
#: Messages a second while the stream runs.
RATE = 20


class OrderStream:
    """Produces one placed order a message, ``RATE`` a second, on a thread, until :meth:`stop`."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.produced = 0
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> OrderStream:
        self._thread.start()
        return self

    def produce(self, count: int) -> None:
        """Produce ``count`` more orders now and wait for their delivery."""
        for _ in range(count):
            number = self.produced
            value = {"id": number, "order_id": f"P-{number}", "customer": f"c{number}@example.com", "total_cents": 1}
            self._producer.produce(
                self.topic, json.dumps(value).encode(), key=f"key-{number}", headers=[("ce_type", ORDER_PLACED)]
            )
            self.produced += 1
        assert self._producer.flush(30) == 0, "orders were not delivered"

    def _run(self) -> None:
        while not self._stop.wait(1 / RATE):
            self.produce(1)

    def stop(self) -> int:
        """Stop producing; return how many orders were produced."""
        self._stop.set()
        self._thread.join(10)
        return self.produced


def orders(database) -> set[str]:
    return {order_id for (order_id,) in database.execute("SELECT order_id FROM orders_order")}


def rows_for(database, count: int) -> bool:
    """Whether the first ``count`` produced orders all have their row."""
    return {f"P-{number}" for number in range(count)} <= orders(database)


def consumer_env(tmp_path, database, **kafka_consumer: Any) -> dict[str, str]:
    """The consumer parks after 3 tries and trips its breaker after 5 failed messages, as a real one might."""
    env = settings_env(
        tmp_path,
        extra="INSTALLED_APPS = [*INSTALLED_APPS, 'orders']  # noqa: F405\n",
        FAILURE_POLICY="dead-letter",
        RETRY={"ATTEMPTS": 3, "INITIAL_BACKOFF": 0.2, "MAX_BACKOFF": 1.0},
        CIRCUIT_BREAKER=5,
        **kafka_consumer,
    )
    return {**env, **database.env}


def database_outage_reported(port: int) -> str | None:
    answer = answered(port, "/readyz", 503)
    return answer[1] if answer and "database unavailable" in answer[1] else None


def ride_out(
    postgres_server, postgres_database, stream: OrderStream, consumer, port: int, seconds: float
) -> tuple[int, float]:
    """Stop the server for ``seconds`` while orders keep coming; return the orders then and the time to recover."""
    postgres_server.stop()
    stopped = time.monotonic()
    wait_for(lambda: database_outage_reported(port), timeout=seconds, what="/readyz to report the outage")
    time.sleep(max(0.0, seconds - (time.monotonic() - stopped)))
    postgres_server.start()
    restarted, backlog = time.monotonic(), stream.produced
    wait_for(lambda: rows_for(postgres_database, backlog), timeout=60, what="the orders produced during the outage")
    assert consumer.process.poll() is None, consumer.output()
    return backlog, time.monotonic() - restarted


def run_outages(
    kafka_broker, make_topic, group_id, consumers, postgres_server, postgres_database, tmp_path, outages
) -> None:
    """A consumer under a steady stream of orders, the server stopped for each of ``outages`` seconds in turn."""
    topic = make_topic(partitions=3)
    kafka_broker.create_topic(f"{topic}-dlt")
    postgres_database.migrate(env=ORDERS_SETTINGS)
    port = free_port()
    env = consumer_env(tmp_path, postgres_database, HEALTH_PORT=port)
    consumer = consumers.start(kafka_broker.bootstrap_servers, topic, tmp_path / "record", group=group_id, env=env)
    stream = OrderStream(kafka_broker.bootstrap_servers, topic).start()
    try:
        wait_for(lambda: rows_for(postgres_database, 40), timeout=60, what="the first orders' rows")
        figures = []
        for seconds in outages:
            backlog, recovered = ride_out(postgres_server, postgres_database, stream, consumer, port, seconds)
            figures.append((seconds, backlog, recovered))
    finally:
        produced = stream.stop()
    wait_for(lambda: rows_for(postgres_database, produced), timeout=60, what="every order's row")

    lost = produced - len(orders(postgres_database) & {f"P-{n}" for n in range(produced)})
    dead_lettered = parked(kafka_broker.bootstrap_servers, topic)
    running = consumer.process.poll() is None
    for seconds, backlog, recovered in figures:
        report_figures(
            f"FIGURES database outage postgres stopped={seconds:g}s: messages={produced} produced_by_restart={backlog} "
            f"lost={lost} dead_lettered={dead_lettered} restarts=0 recovered_in={recovered:.1f}s"
        )
    assert (lost, dead_lettered, running) == (0, 0, True), consumer.output()
    assert "The database is unavailable" in consumer.output()
    consumer.send(signal.SIGTERM)
    assert consumer.wait(30) == 0, consumer.output()


def test_postgres_stopped_for_10s_then_30s_loses_and_parks_nothing_and_the_consumer_carries_on(
    kafka_broker, make_topic, group_id, consumers, postgres_server, postgres_database, tmp_path
):
    run_outages(
        kafka_broker, make_topic, group_id, consumers, postgres_server, postgres_database, tmp_path, outages=(10, 30)
    )


@pytest.mark.timeout(420)
def test_postgres_stopped_for_120s_loses_and_parks_nothing_and_the_consumer_carries_on(
    kafka_broker, make_topic, group_id, consumers, postgres_server, postgres_database, tmp_path
):
    run_outages(
        kafka_broker, make_topic, group_id, consumers, postgres_server, postgres_database, tmp_path, outages=(120,)
    )


def test_postgres_down_past_the_outage_timeout_exits_6_uncommitted_and_a_restart_handles_the_message(
    kafka_broker, make_topic, group_id, consumers, postgres_server, postgres_database, tmp_path
):
    topic = make_topic(partitions=1)
    kafka_broker.create_topic(f"{topic}-dlt")
    postgres_database.migrate(env=ORDERS_SETTINGS)
    env = consumer_env(tmp_path, postgres_database, DATABASE_OUTAGE_TIMEOUT=5)
    stream = OrderStream(kafka_broker.bootstrap_servers, topic)
    stream.produce(5)
    consumer = consumers.start(kafka_broker.bootstrap_servers, topic, tmp_path / "record", group=group_id, env=env)
    wait_for(lambda: rows_for(postgres_database, 5), timeout=60, what="the first orders' rows")
    wait_for(lambda: committed(kafka_broker.bootstrap_servers, group_id, topic, 1) == {0: 5}, 30, "their commit")

    postgres_server.stop()
    stopped = time.monotonic()
    try:
        stream.produce(1)
        code = consumer.wait(60)
        exited_after = time.monotonic() - stopped
        output = consumer.output()
        assert code == EXIT_DATABASE_UNAVAILABLE, output
        last = [line for line in output.splitlines() if line.startswith("CommandError")]
        assert len(last) == 1 and "database was unavailable" in last[0] and f"{topic}[0]@5" in last[0], output
        assert committed(kafka_broker.bootstrap_servers, group_id, topic, 1) == {0: 5}
    finally:
        postgres_server.start()
    restarted = time.monotonic()

    second = consumers.start(
        kafka_broker.bootstrap_servers, topic, tmp_path / "record", "--max-messages", "1", group=group_id, env=env
    )

    assert second.wait(60) == 0, second.output()
    recovered = time.monotonic() - restarted
    assert rows_for(postgres_database, 6) and committed(kafka_broker.bootstrap_servers, group_id, topic, 1) == {0: 6}
    dead_lettered = parked(kafka_broker.bootstrap_servers, topic)
    assert dead_lettered == 0
    report_figures(
        f"FIGURES database outage postgres past DATABASE_OUTAGE_TIMEOUT=5s: messages=6 exit={code} after "
        f"{exited_after:.1f}s lost=0 dead_lettered={dead_lettered} restarts=1 recovered_in={recovered:.1f}s"
    )
