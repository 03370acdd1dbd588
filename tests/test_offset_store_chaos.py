"""
OFFSET_STORE "database" on a real PostgreSQL server: consumers SIGKILLed at random while a receiver
inserts one row per message into a table without a unique constraint (sequentially, on partition-ordered
workers, and from a batch receiver's bulk_create). With the database store no row
is written twice; with the Kafka store (the comparison) the duplicates are counted and printed.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest

from .kafka_utils import MANAGE, ConsumerProcess, manage_env, produce, report_figures, settings_env, wait_for

MESSAGES = 20_000
PARTITIONS = 6
#: Sessions short enough that a killed member's partitions move on within seconds.
SHORT_SESSION = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "auto.commit.interval.ms": 1000}


def row_counts(database, topic):
    """(rows, distinct messages) written for ``topic``."""
    [(rows, distinct)] = database.execute(
        'SELECT count(*), count(DISTINCT (partition, "offset")) FROM testapp_handledrow WHERE topic = %s', (topic,)
    )
    return rows, distinct


def chaos(servers, topic, group, directory, consumers, database, kills=4, batches=False, **kafka_consumer):
    """Three consumers, one SIGKILLed and restarted ``kills`` times, until every message has its row."""
    env = {
        **settings_env(directory, CONSUMER_CONFIG=SHORT_SESSION, **kafka_consumer),
        **database.env,
        "TESTAPP_WRITE_ROWS": "1",
        "TESTAPP_BATCH": "1" if batches else "0",
    }
    record = directory / f"records-{group}.txt"

    def start() -> ConsumerProcess:
        return consumers.start(servers, topic, record, group=group, env=env)

    running = [start() for _ in range(3)]
    rng = random.Random()
    for _ in range(kills):
        wait_for(lambda: row_counts(database, topic)[0] > 0, timeout=60, what="a first row", interval=0.2)
        time.sleep(rng.uniform(1.0, 2.5))
        slot = rng.randrange(len(running))
        running[slot].send(signal.SIGKILL)
        assert running[slot].wait(10) == -signal.SIGKILL
        running[slot] = start()
    wait_for(
        lambda: row_counts(database, topic)[1] >= MESSAGES, timeout=240, what="a row for every message", interval=1
    )
    time.sleep(2)  # anything still running writes its rows now; then the counts are final
    for process in running:
        process.send(signal.SIGTERM)
    for process in running:
        assert process.wait(30) == 0, process.output()
    rows, distinct = row_counts(database, topic)
    return MESSAGES - distinct, rows - distinct


#: The stores compared: (name, settings). Each is a test of its own, so that each has the whole timeout.
STORES = {
    "database": {"OFFSET_STORE": "database"},
    "database-workers": {"OFFSET_STORE": "database", "CONCURRENCY": 4, "ORDERING": "partition"},
    "database-batches": {
        "OFFSET_STORE": "database",
        "CONCURRENCY": 2,
        "ORDERING": "partition",
        "BATCH_SIZE": 50,
        "batches": True,
    },
    "kafka": {"OFFSET_STORE": "kafka"},
}


@pytest.mark.broker
@pytest.mark.parametrize("store", STORES)
def test_sigkill_chaos_under_the_database_store_writes_every_row_exactly_once_and_under_kafka_counts_duplicates(
    store, kafka_broker, make_topic, group_id, tmp_path, consumers, postgres_database
):
    postgres_database.migrate()
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=PARTITIONS, suffix=store)
    produce(servers, topic, [{"id": i, "sleep": 0.002} for i in range(MESSAGES)])
    lost, duplicated = chaos(
        servers, topic, f"{group_id}-{store}", tmp_path, consumers, postgres_database, **STORES[store]
    )
    report_figures(
        f"FIGURES offset-store sigkill chaos OFFSET_STORE={store} (3 consumers, {PARTITIONS} partitions, "
        f"4 kills): messages={MESSAGES} lost={lost} duplicate_rows={duplicated}"
    )
    assert lost == 0
    if store != "kafka":  # the Kafka store is the comparison: its duplicates are printed, not bounded
        assert duplicated == 0


def run_shell(database, script):
    """Migrate ``database``, run ``script`` in ``manage.py shell`` on it, and return the finished process."""
    database.migrate()
    result = subprocess.run(
        [sys.executable, str(MANAGE), "shell", "-c", script],
        env=manage_env(database.env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


#: Run by ``manage.py shell`` on the test's PostgreSQL database: two threads own partition 0 at once (as a
#: member that lost its session but runs on would, beside the partition's new owner) and handle offset 7.
RACE = """
import threading, time
from types import SimpleNamespace
from django.db import connections
from kafka_consumer_app.engine.dispatch import DispatchResult
from kafka_consumer_app.engine.positions import DatabasePositions
from kafka_consumer_app.settings.offset_store import OffsetStoreConfig
from tests.testapp.models import HandledRow

config = SimpleNamespace(offsets=OffsetStoreConfig("database"), group_id="racing", kafka_topic="race", topic="race")
DatabasePositions(config).starting_offsets([SimpleNamespace(partition=0)])
outcomes, gate = [], threading.Barrier(2)

def handle():
    positions = DatabasePositions(config)
    def receivers():
        gate.wait()  # both are inside their transactions now
        HandledRow.objects.create(topic="race", partition=0, offset=7)
        time.sleep(0.5)
        return DispatchResult()
    outcomes.append("committed" if positions.attempt(0, 7, 7, receivers) is not None else "rolled back")
    connections.close_all()

threads = [threading.Thread(target=handle) for _ in range(2)]
for thread in threads: thread.start()
for thread in threads: thread.join(30)
print(sorted(outcomes), HandledRow.objects.filter(topic="race").count(), DatabasePositions(config).next_offset(0))
"""


def test_two_owners_handling_one_message_at_once_commit_it_once_and_roll_the_other_back(postgres_database):
    result = run_shell(postgres_database, RACE)
    # The second UPDATE of the row waits for the first transaction, then finds the row past offset 7.
    assert result.stdout.split("\n")[-2] == "['committed', 'rolled back'] 1 8", result.stdout + result.stderr


#: Run by ``manage.py shell``: the receivers return, then the server ends the session before the row moves.
DROPPED = """
import psycopg
from types import SimpleNamespace
from django.db import connection, connections
from kafka_consumer_app.engine.dispatch import DispatchResult
from kafka_consumer_app.engine.positions import DatabasePositions
from kafka_consumer_app.settings.offset_store import OffsetStoreConfig
from tests.testapp.models import HandledRow

config = SimpleNamespace(offsets=OffsetStoreConfig("database"), group_id="dropped", kafka_topic="drop", topic="drop")
positions = DatabasePositions(config)
positions.starting_offsets([SimpleNamespace(partition=0)])

def receivers():
    HandledRow.objects.create(topic="drop", partition=0, offset=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with psycopg.connect(URL, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return DispatchResult()

failed = positions.attempt(0, 0, 0, receivers)
connections.close_all()
print(failed.ok, type(failed.failures[0].error).__name__, failed.failures[0].receiver_name)
print(HandledRow.objects.filter(topic="drop").count(), positions.next_offset(0))
print(positions.attempt(0, 0, 0, DispatchResult).ok, positions.next_offset(0))
"""


def test_a_session_ended_before_the_row_moves_is_a_failed_attempt_the_outage_rules_see_and_commits_nothing(
    postgres_database,
):
    result = run_shell(postgres_database, f"URL = {postgres_database.url!r}\n{DROPPED}")
    lines = result.stdout.strip().split("\n")[-3:]
    failed, error, receiver = lines[0].split()
    assert failed == "False" and error in {"OperationalError", "InterfaceError"}, lines
    assert receiver.endswith("positions.offset_store"), lines
    assert lines[1:] == ["0 -1", "True 1"], "the receiver's row or the position was committed without the other"
