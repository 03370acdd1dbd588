"""The health server of consume_events: /healthz and /readyz against the real broker, a port in use, its checks."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError

from kafka_consumer_app.observers.health import Readiness
from kafka_consumer_app.settings import topics
from kafka_consumer_app.testing.broker import free_port

from .kafka_utils import ConsumerProcess, produce, read_records, wait_for


def get(port: int, path: str) -> tuple[int, str] | None:
    """GET ``path`` from the health server on ``port``: (status, body), or None while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None


def status(port: int, path: str) -> int | None:
    """The status code of ``path``, or None while nothing listens."""
    answer = get(port, path)
    return answer[0] if answer else None


def answered(port: int, path: str, code: int) -> tuple[int, str] | None:
    """The answer to ``path`` if its status is ``code``, else None (for wait_for)."""
    answer = get(port, path)
    return answer if answer and answer[0] == code else None


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port that another socket listens on, on every interface, for the whole test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        yield holder.getsockname()[1]


# -- against the broker ----------------------------------------------------------------------


@pytest.mark.broker
def test_readyz_is_503_until_the_group_assigns_partitions_then_200(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic()
    record = tmp_path / "records.txt"
    # A member killed with SIGKILL stays in the group until its session expires: a new member cannot be
    # assigned anything before then, which holds the newcomer in the "not yet assigned" state for ~15 s.
    long_session = {"KAFKA_CONSUMER_CONFIG": json.dumps({"session.timeout.ms": 15000, "heartbeat.interval.ms": 1000})}
    killed = consumers.start(servers, topic, record, group=group_id, env=long_session)
    wait_for(lambda: "Assigned partitions [0]" in killed.output(), 60, "the first member's assignment")
    killed.kill()
    port = free_port()

    newcomer = consumers.start(servers, topic, record, group=group_id, env={"KAFKA_HEALTH_PORT": str(port)})
    first = wait_for(lambda: get(port, "/readyz"), 60, "the health server to answer")

    assert first == (503, "not ready: waiting for the group to assign partitions\n"), newcomer.output()
    ready = wait_for(lambda: answered(port, "/readyz", 200), 60, "/readyz to turn 200 once the dead member is gone")
    assert ready == (200, "ready: consuming partitions [0]\n")
    assert "Assigned partitions [0]" in newcomer.output()
    newcomer.send()
    assert newcomer.wait(30) == 0, newcomer.output()
    assert get(port, "/readyz") is None, "the server still answers after the consumer stopped"


@pytest.mark.broker
def test_a_member_left_without_a_partition_is_ready_too(kafka_broker, make_topic, group_id, tmp_path, consumers):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=1)
    ports = [free_port(), free_port()]
    for port in ports:
        consumers.start(servers, topic, tmp_path / "records.txt", group=group_id, env={"KAFKA_HEALTH_PORT": str(port)})

    expected = [
        (200, "ready: consuming partitions [0]\n"),
        (200, "ready: member of the group with no partitions (the group has more members than partitions)\n"),
    ]
    seen: list = []

    def as_expected() -> bool:
        seen[:] = sorted(get(port, "/readyz") or (0, "") for port in ports)
        return seen == expected

    wait_for(as_expected, 90, "both members of the 1-partition group to be ready")
    assert seen == expected


@pytest.mark.broker
def test_healthz_fails_while_a_receiver_stalls_the_loop_and_passes_once_it_polls_again(
    kafka_broker, make_topic, group_id, tmp_path, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic()
    record = tmp_path / "records.txt"
    port = free_port()
    env = {"KAFKA_HEALTH_PORT": str(port), "KAFKA_HEARTBEAT_MAX_AGE": "2"}
    process = consumers.start(servers, topic, record, group=group_id, env=env)
    wait_for(lambda: "Assigned partitions [0]" in process.output(), 60, "the assignment")
    assert get(port, "/healthz")[0] == 200, "an idle loop that polls is healthy"

    produce(servers, topic, [{"id": 1, "sleep": 8}])

    _, body = wait_for(lambda: answered(port, "/healthz", 503), 15, "/healthz to fail while the receiver sleeps")
    assert body.startswith("unhealthy: the consume loop last polled") and "(limit 2s)" in body
    assert read_records(record) == [], "the receiver was still sleeping when /healthz failed"
    wait_for(lambda: status(port, "/healthz") == 200, 30, "/healthz to pass again once the receiver returned")
    assert [r.id for r in read_records(record)] == [1]


@pytest.mark.broker
def test_a_health_port_in_use_stops_the_command_with_one_line_and_exit_1(
    kafka_broker, make_topic, group_id, tmp_path, busy_port
):
    topic = make_topic()
    process = ConsumerProcess(
        kafka_broker.bootstrap_servers,
        topic,
        tmp_path / "records.txt",
        group=group_id,
        env={"KAFKA_HEALTH_PORT": str(busy_port)},
    )

    assert process.wait(60) == 1, process.output()
    lines = process.output().strip().splitlines()
    assert len(lines) == 1, process.output()
    assert f"port {busy_port} (0.0.0.0:{busy_port}) is already in use" in lines[0]
    assert "--health-port" in lines[0]


@pytest.mark.broker
def test_the_health_port_option_overrides_the_setting(
    kafka_broker, make_topic, group_id, tmp_path, busy_port, consumers
):
    topic = make_topic()
    port = free_port()
    process = consumers.start(
        kafka_broker.bootstrap_servers,
        topic,
        tmp_path / "records.txt",
        "--health-port",
        str(port),
        group=group_id,
        env={"KAFKA_HEALTH_PORT": str(busy_port)},
    )

    wait_for(lambda: status(port, "/healthz") == 200, 60, f"/healthz on the --health-port {port}")
    assert status(port, "/metrics") == 200
    assert status(port, "/nothing-here") == 404
    process.send()
    assert process.wait(30) == 0, process.output()


# -- the command line and the checks ----------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "65536", "-1", "http"])
def test_the_health_port_option_refuses_anything_but_a_port_number(value):
    with pytest.raises(CommandError, match="must be a port number from 1 to 65535"):
        call_command("consume_events", "--topic", "orders", "--health-port", value)


@pytest.mark.parametrize("value", [0, -1, 65536, "9100", True, 9100.0])
def test_an_invalid_health_port_setting_is_check_e020(settings, value):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "HEALTH_PORT": value}

    found = [problem for problem in topics.problems() if problem.id.startswith("kafka_consumer_app.E02")]

    assert [problem.id for problem in found] == ["kafka_consumer_app.E020"]
    assert repr(value) in found[0].msg and found[0].hint


@pytest.mark.parametrize("value", ["", "  ", 0, ["0.0.0.0"]])
def test_an_invalid_health_host_setting_is_check_e021(settings, value):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "HEALTH_HOST": value}

    assert [p.id for p in topics.problems() if p.id.startswith("kafka_consumer_app.E02")] == ["kafka_consumer_app.E021"]


def test_valid_health_settings_pass_the_checks_and_reach_the_topic_config(settings):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "HEALTH_PORT": 9100, "HEALTH_HOST": "127.0.0.1"}

    assert topics.problems() == []
    health = topics.get_topic_config("orders").health
    assert (health.port, health.host) == (9100, "127.0.0.1")


def test_the_health_server_is_off_by_default_and_binds_every_interface_when_on(settings):
    assert topics.get_topic_config("orders").health.port is None
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "HEALTH_PORT": 9100}
    assert topics.get_topic_config("orders").health.host == "0.0.0.0"


def test_the_deploy_check_reports_a_health_port_in_use_as_e022(settings, busy_port):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "HEALTH_PORT": busy_port}

    deploy = [m for m in checks.run_checks(include_deployment_checks=True) if m.id == "kafka_consumer_app.E022"]
    default = [m for m in checks.run_checks() if m.id == "kafka_consumer_app.E022"]

    assert len(deploy) == 1 and f"port {busy_port}" in deploy[0].msg and "already in use" in deploy[0].msg
    assert deploy[0].hint
    assert default == [], "a running consumer holds its own port: the default checks must not fail on it"


def test_the_deploy_check_passes_for_a_free_health_port(settings):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "HEALTH_PORT": free_port()}

    assert [m for m in checks.run_checks(include_deployment_checks=True) if m.id == "kafka_consumer_app.E022"] == []


# -- the readiness rule ---------------------------------------------------------------------


def stats(state: str, join_state: str) -> dict:
    """librdkafka statistics reduced to the consumer group's state."""
    return {"cgrp": {"state": state, "join_state": join_state}}


def test_readiness_waits_for_the_first_assignment_whatever_the_statistics_say():
    readiness = Readiness()
    readiness.observe(stats("up", "wait-join"))
    assert readiness.check()[0] is False
    readiness.observe(stats("up", "steady"))
    assert readiness.check() == (False, "not ready: waiting for the group to assign partitions")


def test_readiness_after_an_assignment_with_or_without_partitions():
    with_partitions, without = Readiness(), Readiness()
    with_partitions.assigned([1, 0])
    without.assigned([])

    assert with_partitions.check() == (True, "ready: consuming partitions [0, 1]")
    assert without.check()[0] is True and "no partitions" in without.check()[1]


def test_a_clean_revoke_keeps_the_member_ready_but_lost_partitions_do_not():
    readiness = Readiness()
    readiness.assigned([0, 1])
    readiness.revoked([1], lost=False)
    assert readiness.check() == (True, "ready: consuming partitions [0]")
    readiness.revoked([0], lost=True)
    assert readiness.check()[0] is False
    readiness.assigned([0])
    assert readiness.check()[0] is True


def test_statistics_newer_than_the_assignment_decide_until_the_next_callback():
    readiness = Readiness()
    readiness.assigned([0])
    readiness.observe(stats("up", "steady"))
    assert readiness.check()[0] is True
    readiness.observe(stats("wait-coord", "init"))
    assert readiness.check() == (
        False,
        "not ready: group state 'wait-coord', join state 'init' (rebalancing or rejoining)",
    )
    readiness.assigned([])
    assert readiness.check()[0] is True
