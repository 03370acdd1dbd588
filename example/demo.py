"""
The demo behind ``make demo``: a local broker, the example service's consumer, sample events.

1. Starts Apache Kafka on 127.0.0.1 with the broker launcher
   (``python -m kafka_consumer_app.testing.broker run``) and creates the ``orders`` topic
   and its dead-letter topic, ``orders-dlt``.
2. Runs ``python example/manage.py consume_events --topic orders`` as its own process,
   as Kubernetes would.
3. Produces orders (CloudEvents ``ce_type`` headers), a cancellation, and one duplicate
   delivery, which the idempotent receivers absorb.
4. Waits for the receivers' writes, stops the consumer with SIGTERM (exit 0 expected),
   prints what the handlers did, and stops the broker.

Exits 0 when everything above happened, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOPIC = "orders"
PLACED = "com.example.order.placed.v1"
CANCELLED = "com.example.order.cancelled.v1"
ORDERS = [
    ("A-1001", "ada@example.com", 4200),
    ("A-1002", "grace@example.com", 1999),
    ("A-1003", "linus@example.com", 650),
    ("A-1004", "barbara@example.com", 12000),
    ("A-1005", "ken@example.com", 300),
]


def say(text: str) -> None:
    """Print one line of the demo's own narration."""
    print(f"[demo] {text}", flush=True)


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is truthy; raise after ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.2)


def relay(process: subprocess.Popen[str], prefix: str) -> threading.Thread:
    """Copy a child's output to ours, line by line, with a prefix."""

    def run() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            print(f"{prefix} {line}", end="", flush=True)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def start_broker(workdir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """Start the broker launcher and return it with the bootstrap address it printed."""
    ready = workdir / "kafka.env"
    broker = subprocess.Popen(
        [
            *(sys.executable, "-m", "kafka_consumer_app.testing.broker", "run"),
            *("--topic", f"{TOPIC}:3", "--topic", f"{TOPIC}-dlt:3", "--ready-file", str(ready)),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    relay(broker, "[broker]")
    wait_for(lambda: ready.exists() or broker.poll() is not None, 180, "the Kafka broker to start")
    if not ready.exists():
        raise RuntimeError("the Kafka broker did not start; see its output above")
    return broker, ready.read_text().strip().split("=", 1)[1]


def produce_events(bootstrap: str) -> int:
    """Produce the sample events and return how many were sent."""
    from confluent_kafka import Producer  # pylint: disable=import-outside-toplevel

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "log_level": 3})
    events = [
        (order_id, PLACED, {"order_id": order_id, "customer": customer, "total_cents": cents})
        for order_id, customer, cents in ORDERS
    ]
    events.append(("A-1003", CANCELLED, {"order_id": "A-1003"}))
    events.append(events[0])  # a duplicate delivery: the receivers are idempotent
    for key, event_type, value in events:
        producer.produce(TOPIC, json.dumps(value).encode(), key=key, headers=[("ce_type", event_type.encode())])
    if producer.flush(30) != 0:
        raise RuntimeError("could not deliver the sample events to the broker")
    return len(events)


def read_state(db_path: Path) -> tuple[list[tuple], int]:
    """Return the orders table and the number of audit rows, as the receivers left them."""
    with sqlite3.connect(db_path, timeout=10) as db:
        orders = db.execute(
            "SELECT order_id, customer, total_cents, status, updated_from FROM orders_order ORDER BY order_id"
        )
        rows = orders.fetchall()
        audited = db.execute("SELECT COUNT(*) FROM orders_auditentry").fetchone()[0]
    return rows, audited


def read_positions(db_path: Path) -> list[tuple[int, int]]:
    """The orders topic's positions, written with the receivers' writes (OFFSET_STORE "database")."""
    with sqlite3.connect(db_path, timeout=10) as db:
        found = db.execute(
            "SELECT partition, next_offset FROM kafka_consumer_app_consumedposition "
            "WHERE topic = ? AND next_offset >= 0 ORDER BY partition",
            (TOPIC,),
        )
        return found.fetchall()


def run_demo(workdir: Path) -> int:
    """Run every step; return the process exit code."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env["EXAMPLE_DB_PATH"] = str(workdir / "example.sqlite3")
    env["KAFKA_PROGRESS_INTERVAL"] = "5"
    manage = [sys.executable, str(HERE / "manage.py")]

    say("Starting a local Apache Kafka broker (KRaft, 127.0.0.1)...")
    broker, bootstrap = start_broker(workdir, env)
    env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    consumer = None
    try:
        say(f"Broker ready at {bootstrap}; creating the example service's database...")
        subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
        say(f"Running: manage.py consume_events --topic {TOPIC}")
        consumer = subprocess.Popen(
            [*manage, "consume_events", "--topic", TOPIC],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        relay(consumer, "[consumer]")
        say(f"Produced {produce_events(bootstrap)} events (5 orders, 1 cancellation, 1 duplicate).")
        db_path = Path(env["EXAMPLE_DB_PATH"])
        wait_for(lambda: read_state(db_path)[1] >= 7, 90, "the receivers to handle every event")
        wait_for(lambda: any(row[3] == "cancelled" for row in read_state(db_path)[0]), 30, "the cancellation")
        say("All events handled; sending SIGTERM to the consumer...")
        consumer.send_signal(signal.SIGTERM)
        code = consumer.wait(30)
        say(f"consume_events exited with {code}.")
        rows, audited = read_state(db_path)
        print_results(rows, audited)
        positions = read_positions(db_path)
        say(
            "Committed in the same transactions as those rows (OFFSET_STORE 'database'), the next offset of "
            "each partition: " + ", ".join(f"{TOPIC}[{partition}] {offset}" for partition, offset in positions)
        )
        return 0 if code == 0 and len(rows) == len(ORDERS) and sum(o for _, o in positions) == audited else 1
    finally:
        if consumer is not None and consumer.poll() is None:
            consumer.kill()
        broker.send_signal(signal.SIGTERM)
        broker.wait(60)
        say("Broker stopped.")


def print_results(rows: list[tuple], audited: int) -> None:
    """Show what the handlers did."""
    say(f"What the handlers did ({audited} messages audited, {len(rows)} orders, duplicate absorbed):")
    print(f"    {'order':8} {'customer':22} {'total':>8}  {'status':10} last event")
    for order_id, customer, cents, status, source in rows:
        print(f"    {order_id:8} {customer:22} {cents / 100:8.2f}  {status:10} {source}")


def main() -> int:
    """Entry point of ``make demo``."""
    with tempfile.TemporaryDirectory(prefix="kafka-consumer-demo-") as workdir:
        try:
            return run_demo(Path(workdir))
        except (TimeoutError, RuntimeError, subprocess.SubprocessError) as error:
            say(f"FAILED: {error}")
            return 1


if __name__ == "__main__":
    sys.exit(main())
