"""The liveness probe reads the heartbeat file without Django, and the loop keeps that file fresh."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from kafka_consumer_app.probe import default_heartbeat_file

from .kafka_utils import ROOT, ConsumerProcess, wait_for


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the probe exactly as a Kubernetes exec probe would."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "kafka_consumer_app.probe", *args], capture_output=True, text=True, env=env, timeout=30
    )


def test_a_fresh_heartbeat_passes_the_probe(tmp_path):
    heartbeat = tmp_path / "hb"
    heartbeat.touch()

    result = probe("--file", str(heartbeat), "--max-age", "30")

    assert result.returncode == 0 and result.stdout.startswith("healthy")


def test_a_stale_heartbeat_fails_the_probe_with_one_line(tmp_path):
    heartbeat = tmp_path / "hb"
    heartbeat.touch()
    old = time.time() - 120
    os.utime(heartbeat, (old, old))

    result = probe("--file", str(heartbeat), "--max-age", "60")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "last polled 120s ago" in result.stderr


def test_a_missing_heartbeat_fails_the_probe(tmp_path):
    result = probe("--file", str(tmp_path / "never-written"))

    assert result.returncode == 1 and "does not exist" in result.stderr


def test_the_probe_never_imports_django():
    code = "import sys, kafka_consumer_app.probe; print('django' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=30)

    assert result.stdout.strip() == "False"


@pytest.mark.broker
def test_a_consuming_process_keeps_its_heartbeat_fresh_and_removes_it_when_stopped(
    kafka_broker, make_topic, group_id, tmp_path
):
    topic = make_topic()
    heartbeat = tmp_path / "consumer.heartbeat"
    process = ConsumerProcess(
        kafka_broker.bootstrap_servers,
        topic,
        tmp_path / "record.txt",
        group=group_id,
        env={"KAFKA_HEARTBEAT_FILE": str(heartbeat)},
    )
    try:
        wait_for(heartbeat.exists, 60, "the heartbeat file")
        first = heartbeat.stat().st_mtime
        wait_for(lambda: heartbeat.stat().st_mtime > first, 10, "a second heartbeat on an idle topic")
        assert probe("--file", str(heartbeat), "--max-age", "10").returncode == 0
        process.send()
        assert process.wait(30) == 0
    finally:
        process.kill()

    assert not heartbeat.exists()


def test_the_default_heartbeat_file_is_per_topic_and_safe_for_any_topic_name():
    assert default_heartbeat_file("a/b c") != default_heartbeat_file("orders")
    assert os.path.basename(default_heartbeat_file("a/b c")) == "kafka-consumer-a_b_c.heartbeat"
