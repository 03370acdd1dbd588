"""
The demo behind ``make demo``: a local broker, the example service's consumer, sample events.

1. Starts Apache Kafka on 127.0.0.1 with the broker launcher
   (``python -m kafka_consumer_app.testing.broker run``) and creates the ``orders`` topic
   and its dead-letter topic, ``orders-dlt``.
2. Runs ``python example/manage.py consume_events --topic orders`` as its own process,
   as Kubernetes would.
3. Produces orders (CloudEvents ``ce_type`` headers), a cancellation, one duplicate
   delivery, which the idempotent receivers absorb, and one malformed order, which is
   parked in ``orders-dlt``.
4. Waits for the receivers' writes and the parked message, stops the consumer with SIGTERM
   (exit 0 expected) and prints what the handlers did.
5. With ``--console`` (the default when the demo runs in a terminal outside CI), starts the
   consumer again and the example service's admin on 127.0.0.1, creates a superuser with a
   random password, and prints the operator console's address and that login. Enter or
   Ctrl-C stops it all.
6. Stops the broker.

Exits 0 when everything above happened, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
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
    # Not JSON: the consumer cannot decode it, so it parks it in orders-dlt and goes on.
    producer.produce(TOPIC, b"{order_id: A-1006", key="A-1006", headers=[("ce_type", PLACED.encode())])
    if producer.flush(30) != 0:
        raise RuntimeError("could not deliver the sample events to the broker")
    return len(events) + 1


def parked_count(bootstrap: str) -> int:
    """How many messages ``orders-dlt`` holds: its partitions' end offsets, summed."""
    from confluent_kafka import Consumer, TopicPartition  # pylint: disable=import-outside-toplevel

    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "demo-reader", "log_level": 3})
    try:
        metadata = reader.list_topics(f"{TOPIC}-dlt", timeout=10).topics[f"{TOPIC}-dlt"]
        ends = [reader.get_watermark_offsets(TopicPartition(f"{TOPIC}-dlt", p), 10)[1] for p in metadata.partitions]
        return sum(ends)
    finally:
        reader.close()


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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def listening(port: int) -> bool:
    """Whether a server accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def serve_console(manage: list[str], env: dict[str, str]) -> None:
    """Run the consumer and the admin until Enter or Ctrl-C, with a superuser to log in with."""
    password = secrets.token_urlsafe(12)
    superuser = {**env, "DJANGO_SUPERUSER_PASSWORD": password}
    subprocess.run(
        [*manage, "createsuperuser", "--noinput", "--username", "demo", "--email", "demo@example.com"],
        env=superuser,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    children = [
        subprocess.Popen(
            [*manage, "consume_events", "--topic", TOPIC],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ),
        # --insecure serves the admin's CSS and scripts with DEBUG off; this is a local look, not a deployment.
        subprocess.Popen(
            [*manage, "runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ),
    ]
    relay(children[0], "[consumer]")
    relay(children[1], "[admin]")
    wait_for(lambda: listening(port) or children[1].poll() is not None, 60, "the admin to start")
    if children[1].poll() is not None:
        raise RuntimeError("the admin did not start; see its output above")
    say(f"Operator console: http://127.0.0.1:{port}/admin/kafka_consumer_app/  (login: demo / {password})")
    say("The consumer runs again: pause it, look at the parked order, replay it. Press Enter or Ctrl-C to stop.")
    try:
        sys.stdin.readline()
        stop = True
    except KeyboardInterrupt:  # the terminal sent SIGINT to the children too: a second signal would hurry them
        stop = False
    for child in children if stop else []:
        child.send_signal(signal.SIGTERM)
    for child in children:
        child.wait(60)
    say("Console stopped.")


def run_demo(workdir: Path, console: bool) -> int:
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
        sent = produce_events(bootstrap)
        say(f"Produced {sent} events (5 orders, 1 cancellation, 1 duplicate, 1 malformed).")
        db_path = Path(env["EXAMPLE_DB_PATH"])
        wait_for(lambda: read_state(db_path)[1] >= 7, 90, "the receivers to handle every event")
        wait_for(lambda: any(row[3] == "cancelled" for row in read_state(db_path)[0]), 30, "the cancellation")
        wait_for(lambda: parked_count(bootstrap) >= 1, 60, f"the malformed order to be parked in {TOPIC}-dlt")
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
        parked = parked_count(bootstrap)
        say(f"Parked in {TOPIC}-dlt: {parked} message (the malformed order), for the operator console to show.")
        ok = code == 0 and len(rows) == len(ORDERS) and sum(o for _, o in positions) == sent and parked == 1
        if ok and console:
            serve_console(manage, env)
        return 0 if ok else 1
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
    parser = argparse.ArgumentParser(description="Run the example service's consumer on a local broker.")
    parser.add_argument(
        "--console",
        action=argparse.BooleanOptionalAction,
        default=sys.stdin.isatty() and not os.environ.get("CI"),
        help="afterwards, serve the operator console until Enter (default: in a terminal outside CI)",
    )
    console = parser.parse_args().console
    with tempfile.TemporaryDirectory(prefix="kafka-consumer-demo-") as workdir:
        try:
            return run_demo(Path(workdir), console)
        except (TimeoutError, RuntimeError, subprocess.SubprocessError) as error:
            say(f"FAILED: {error}")
            return 1


if __name__ == "__main__":
    sys.exit(main())
