"""``consumer_status``: committed offsets, end offsets, lag and members of a group, against a real broker."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from django.core.management import call_command
from django.core.management.base import CommandError

from kafka_consumer_app.testing.broker import free_port

from .kafka_utils import MANAGE, ROOT, produce, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.django_db]


def status(topic: str, **options) -> dict:
    """Run ``consumer_status --json`` in-process and return the parsed report."""
    out = StringIO()
    call_command("consumer_status", topic=topic, json=True, stdout=out, **options)
    return json.loads(out.getvalue())


def status_error(topic: str, **options) -> CommandError:
    with pytest.raises(CommandError) as caught:
        call_command("consumer_status", topic=topic, stdout=StringIO(), **options)
    return caught.value


def test_the_lag_of_each_partition_is_what_was_produced_minus_what_was_consumed(kafka_settings, make_topic, received):
    servers = kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"]
    topic = make_topic(partitions=3)
    produced = {0: 6, 1: 4, 2: 5}
    for partition, count in produced.items():
        produce(servers, topic, [{"n": i} for i in range(count)], partition=partition)
    got = received(topic)

    call_command("consume_events", topic=topic, max_messages=9)

    consumed = Counter(message.partition for message in got)
    assert sum(consumed.values()) == 9
    report = status(topic)
    assert report["group_id"] == kafka_settings.KAFKA_CONSUMER["GROUP_ID"]
    assert report["total_lag"] == 15 - 9
    by_partition = {p["partition"]: p for p in report["partitions"]}
    assert sorted(by_partition) == [0, 1, 2]
    for partition, count in produced.items():
        row = by_partition[partition]
        expected_committed = consumed[partition] if consumed[partition] else None
        assert (row["end"], row["earliest"], row["committed"], row["lag"]) == (
            count,
            0,
            expected_committed,
            count - consumed[partition],
        ), f"partition {partition}: {row}"


def test_the_table_is_aligned_and_shows_the_same_figures(kafka_settings, make_topic, received):
    servers = kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"]
    topic = make_topic(partitions=2)
    produce(servers, topic, [{"n": i} for i in range(12)], partition=0)
    produce(servers, topic, [{"n": i} for i in range(3)], partition=1)
    got = received(topic)
    call_command("consume_events", topic=topic, max_messages=5)
    consumed = Counter(message.partition for message in got)

    out = StringIO()
    call_command("consumer_status", topic=topic, stdout=out)
    lines = out.getvalue().splitlines()

    assert lines[0].startswith(f"Group {kafka_settings.KAFKA_CONSUMER['GROUP_ID']} on topic {topic}: state ")
    assert lines[0].endswith("total lag 10")
    header = next(i for i, line in enumerate(lines) if line.startswith("PARTITION  COMMITTED  EARLIEST  END  LAG  "))
    assert lines[header].endswith("  LAST COMMITTED AT")
    rows = lines[header + 1 : header + 3]
    # Right-aligned columns: every row is as long as the header, and the cells line up under it.
    assert [len(row) for row in rows] == [len(lines[header])] * 2
    cells = [row.split() for row in rows]
    assert [int(cell[4]) for cell in cells] == [12 - consumed[0], 3 - consumed[1]]
    # The last committed message's time: the messages were produced moments ago.
    times = {int(cell[0]): cell[5] for cell in cells}
    for partition in consumed:
        assert abs(datetime.fromisoformat(times[partition]) - datetime.now(UTC)) < timedelta(hours=1)
    assert all(times[p] == "-" for p in (0, 1) if not consumed[p])
    assert "No active members." in lines


def test_a_group_that_never_committed_counts_every_retained_message_as_lag(kafka_settings, make_topic):
    servers = kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"]
    topic = make_topic(partitions=2)
    produce(servers, topic, [{"n": i} for i in range(4)], partition=0)

    report = status(topic, group_id=f"never-{uuid.uuid4().hex[:8]}")

    assert [(p["partition"], p["committed"], p["end"], p["lag"]) for p in report["partitions"]] == [
        (0, None, 4, 4),
        (1, None, 0, 0),
    ]
    assert report["members"] == []
    assert report["total_lag"] == 4


def test_the_lag_counts_from_the_earliest_retained_offset_once_older_messages_are_deleted(
    kafka_settings, make_topic, received
):
    servers = kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"]
    topic = make_topic()
    produce(servers, topic, [{"n": i} for i in range(10)])
    received(topic)
    call_command("consume_events", topic=topic, max_messages=2)  # commits offset 2
    admin = AdminClient({"bootstrap.servers": servers})
    deleted = admin.delete_records([TopicPartition(topic, 0, 6)], request_timeout=20)
    for future in deleted.values():
        future.result(timeout=30)

    behind = status(topic)["partitions"][0]
    fresh = status(topic, group_id=f"fresh-{uuid.uuid4().hex[:8]}")["partitions"][0]

    # Committed 2, but offsets 2-5 are gone: the consumer would resume at 6, so 4 messages are left.
    assert (behind["committed"], behind["earliest"], behind["end"], behind["lag"]) == (2, 6, 10, 4)
    assert (fresh["committed"], fresh["lag"]) == (None, 4)


def test_the_members_of_a_running_consumer_are_shown_with_their_partitions(
    kafka_broker, kafka_settings, make_topic, group_id, tmp_path, consumers
):
    topic = make_topic(partitions=2)
    process = consumers.start(kafka_broker.bootstrap_servers, topic, tmp_path / "records.txt", group=group_id)

    def holds_both_partitions():
        report = status(topic)
        members = report["members"]
        return report if len(members) == 1 and members[0]["partitions"] == [0, 1] else None

    report = wait_for(holds_both_partitions, 45, "the consumer to hold both partitions")
    member = report["members"][0]
    assert report["state"] == "stable"
    assert member["client_id"] and member["member_id"]
    assert "127.0.0.1" in member["host"]

    process.send(signal.SIGTERM)
    assert process.wait(30) == 0, process.output()
    # A clean stop leaves the group at once.
    assert wait_for(lambda: status(topic)["members"] == [], 15, "the member to leave the group")


def test_the_topic_prefix_is_applied_like_consume_events_does(kafka_broker, kafka_settings, make_topic):
    prefix = f"env{uuid.uuid4().hex[:6]}"
    name = f"orders-{uuid.uuid4().hex[:6]}"
    kafka_broker.create_topic(f"{prefix}-{name}", partitions=2)
    produce(kafka_broker.bootstrap_servers, f"{prefix}-{name}", [{"n": 1}], partition=1)
    kafka_settings.KAFKA_CONSUMER = {**kafka_settings.KAFKA_CONSUMER, "TOPIC_PREFIX": prefix}

    report = status(name)

    assert (report["topic"], report["kafka_topic"], report["total_lag"]) == (name, f"{prefix}-{name}", 1)
    error = status_error(make_topic())  # exists without the prefix only
    assert "does not exist" in str(error) and f"'{prefix}-" in str(error)


def test_a_missing_topic_is_one_line_and_exit_code_1(kafka_settings):
    error = status_error("no-such-topic-here")
    assert error.returncode == 1
    assert "\n" not in str(error)
    assert str(error).startswith("topic 'no-such-topic-here' does not exist on ")


def test_an_unreachable_cluster_is_given_up_after_connect_timeout_with_one_line(settings, caplog):
    caplog.set_level(logging.INFO, logger="kafka_consumer_app")
    address = f"127.0.0.1:{free_port()}"
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "BOOTSTRAP_SERVERS": address, "CONNECT_TIMEOUT": 2}
    started = time.monotonic()
    error = status_error("orders")
    elapsed = time.monotonic() - started
    assert error.returncode == 1
    assert str(error).startswith(f"could not reach Kafka at {address} within 2s")
    assert "\n" not in str(error)
    assert 2 <= elapsed < 6, f"gave up after {elapsed:.1f}s"
    # Only the error line: not librdkafka's connection failures, which come dozens a second.
    assert [record.getMessage() for record in caplog.records] == []


def test_the_command_line_prints_json_and_exits_1_on_a_missing_topic(kafka_broker, make_topic, group_id):
    topic = make_topic(partitions=1)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": 1}, {"n": 2}])
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example")]),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "KAFKA_GROUP_ID": group_id,
    }

    def run(*args: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, str(MANAGE), "consumer_status", *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)

    found = run("--topic", topic, "--json")
    missing = run("--topic", "no-such-topic-here")

    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["total_lag"] == 2
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr
    assert (
        missing.stderr.strip()
        .splitlines()[-1]
        .startswith("CommandError: topic 'no-such-topic-here' does not exist on ")
    )
