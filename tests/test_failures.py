"""Retries, failure policies, the circuit breaker and the watchdog, in-process against the real broker."""

from __future__ import annotations

import json
import logging
import random
import signal
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from kafka_consumer_app.engine.dead_letters import HEADER_ATTEMPTS, HEADER_REASON
from kafka_consumer_app.engine.policy import CircuitBreaker, RetryPolicy
from kafka_consumer_app.engine.watchdog import Watchdog
from kafka_consumer_app.exceptions import EXIT_HANDLER_FAILED, EXIT_STALLED
from kafka_consumer_app.settings.failures import RetryConfig
from kafka_consumer_app.signals import topic_signal

from .kafka_utils import ConsumerProcess, committed, produce, read_records, read_topic, wait_for

pytestmark = pytest.mark.django_db


# -- policy arithmetic (no broker) --------------------------------------------------------------


def test_backoff_grows_by_the_multiplier_and_stops_at_the_maximum():
    policy = RetryPolicy(RetryConfig(initial_backoff=1.0, multiplier=3.0, max_backoff=5.0, jitter=0.0))

    assert [policy.backoff(attempt) for attempt in (1, 2, 3, 4)] == [1.0, 3.0, 5.0, 5.0]


def test_jitter_keeps_every_backoff_within_its_fraction_of_the_base():
    policy = RetryPolicy(RetryConfig(initial_backoff=2.0, jitter=0.25), rng=random.Random(7))

    delays = [policy.backoff(1) for _ in range(200)]

    assert min(delays) >= 1.5 and max(delays) <= 2.5 and len(set(delays)) > 100


def test_a_failure_is_retried_until_the_attempts_are_used_up():
    policy = RetryPolicy(RetryConfig(attempts=3))

    assert [policy.retryable(made, [RuntimeError()]) for made in (1, 2, 3)] == [True, True, False]


def test_an_exception_listed_as_not_retried_is_never_retried():
    policy = RetryPolicy(RetryConfig(attempts=5, not_retried=("json.JSONDecodeError",)))

    assert not policy.retryable(1, [RuntimeError(), json.JSONDecodeError("bad", "{", 0)])
    assert policy.retryable(1, [RuntimeError()])


def test_the_circuit_breaker_trips_on_the_nth_consecutive_failure_and_a_success_resets_it():
    breaker = CircuitBreaker(3)

    assert [breaker.record_failure(), breaker.record_failure()] == [False, False]
    breaker.record_success()
    assert [breaker.record_failure(), breaker.record_failure(), breaker.record_failure()] == [False, False, True]


def test_the_watchdog_logs_a_receiver_past_its_soft_limit_with_its_stack(caplog):
    watchdog = Watchdog(soft_timeout=0.2, hard_timeout=60, interval=0.05)
    watchdog.start()

    def slow_receiver_body():
        time.sleep(0.6)

    try:
        with caplog.at_level(logging.WARNING, logger="kafka_consumer_app.engine.watchdog"), watchdog.watching("t[0]@7"):
            slow_receiver_body()
    finally:
        watchdog.stop()

    warnings = [r.getMessage() for r in caplog.records if "soft limit" in r.getMessage()]
    assert len(warnings) == 1 and "t[0]@7" in warnings[0] and "slow_receiver_body" in warnings[0]


# -- against the broker ------------------------------------------------------------------------


@pytest.fixture
def connect():
    """Connect receivers for one test and disconnect them afterwards."""
    connected = []

    def do_connect(topic, function):
        topic_signal(topic).connect(function, weak=False)
        connected.append((topic, function))
        return function

    yield do_connect
    for topic, function in connected:
        topic_signal(topic).disconnect(function)


def configure(settings, topic, **overrides):
    """Give ``topic`` its own failure settings."""
    settings.KAFKA_CONSUMER = {
        **settings.KAFKA_CONSUMER,
        "TOPICS": {topic: overrides},
    }


@pytest.mark.broker
def test_a_retry_blocks_only_its_partition_and_calls_again_only_the_failed_receiver(
    kafka_settings, kafka_broker, make_topic, connect
):
    topic = make_topic(partitions=2)
    configure(kafka_settings, topic, RETRY={"ATTEMPTS": 3, "INITIAL_BACKOFF": 1.5, "JITTER": 0})
    events = []
    tries = {"flaky": 0}

    def steady(sender, message, **kwargs):
        events.append(("steady", message.partition, message.value["n"], time.monotonic()))

    def flaky(sender, message, **kwargs):
        if message.partition == 0:
            tries["flaky"] += 1
            if tries["flaky"] < 3:
                raise ConnectionError("database unavailable")
        events.append(("flaky", message.partition, message.value["n"], time.monotonic()))

    connect(topic, steady)
    connect(topic, flaky)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": 0}], partition=0)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(1, 4)], partition=1)

    call_command("consume_events", topic=topic, max_messages=4)

    steady_on_0 = [e for e in events if e[0] == "steady" and e[1] == 0]
    flaky_on_0 = [e for e in events if e[0] == "flaky" and e[1] == 0]
    partition_1_done = max(e[3] for e in events if e[1] == 1)
    assert len(steady_on_0) == 1, "the receiver that succeeded was called again"
    assert tries["flaky"] == 3 and len(flaky_on_0) == 1
    assert partition_1_done < flaky_on_0[0][3], "partition 1 waited for partition 0's retry"
    assert committed(kafka_broker.bootstrap_servers, kafka_settings.KAFKA_CONSUMER["GROUP_ID"], topic, 2) == {
        0: 1,
        1: 3,
    }


@pytest.mark.broker
def test_an_always_failing_message_is_parked_after_its_attempts_and_the_next_one_is_handled(
    kafka_settings, kafka_broker, make_topic, connect
):
    topic = make_topic()
    kafka_broker.create_topic(f"{topic}-dlt")
    configure(kafka_settings, topic, FAILURE_POLICY="dead-letter", RETRY={"ATTEMPTS": 2, "INITIAL_BACKOFF": 0.2})
    handled = []

    def receiver(sender, message, **kwargs):
        if message.value.get("bad"):
            raise ValueError("cannot apply this event")
        handled.append(message.value["n"])

    connect(topic, receiver)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": 0, "bad": True}, {"n": 1}])

    call_command("consume_events", topic=topic, max_messages=2)

    parked = read_topic(kafka_broker.bootstrap_servers, f"{topic}-dlt", 1)[0]
    headers = dict(parked.headers())
    assert handled == [1]
    assert (headers[HEADER_REASON], headers[HEADER_ATTEMPTS]) == (b"receiver-failed", b"2")
    assert committed(kafka_broker.bootstrap_servers, kafka_settings.KAFKA_CONSUMER["GROUP_ID"], topic, 1) == {0: 2}


@pytest.mark.broker
def test_a_not_retried_exception_goes_to_the_dead_letter_topic_on_its_first_failure(
    kafka_settings, kafka_broker, make_topic, connect
):
    topic = make_topic()
    kafka_broker.create_topic(f"{topic}-dlt")
    configure(
        kafka_settings, topic, FAILURE_POLICY="dead-letter", RETRY={"ATTEMPTS": 5, "NOT_RETRIED": ["builtins.KeyError"]}
    )
    tries = []

    def receiver(sender, message, **kwargs):
        tries.append(message.offset)
        raise KeyError("missing field")

    connect(topic, receiver)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": 0}])

    call_command("consume_events", topic=topic, max_messages=1)

    assert tries == [0]
    assert dict(read_topic(kafka_broker.bootstrap_servers, f"{topic}-dlt", 1)[0].headers())[HEADER_ATTEMPTS] == b"1"


@pytest.mark.broker
def test_the_skip_policy_commits_a_failed_message_and_moves_on(kafka_settings, kafka_broker, make_topic, connect):
    topic = make_topic()
    configure(kafka_settings, topic, FAILURE_POLICY="skip", DEAD_LETTER_TOPIC=None)
    handled = []

    def receiver(sender, message, **kwargs):
        if message.value["n"] == 0:
            raise RuntimeError("unusable")
        handled.append(message.value["n"])

    connect(topic, receiver)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": 0}, {"n": 1}])

    call_command("consume_events", topic=topic, max_messages=2)

    assert handled == [1]
    assert committed(kafka_broker.bootstrap_servers, kafka_settings.KAFKA_CONSUMER["GROUP_ID"], topic, 1) == {0: 2}


@pytest.mark.broker
def test_the_circuit_breaker_stops_the_consumer_without_committing_the_message_that_tripped_it(
    kafka_settings, kafka_broker, make_topic, connect
):
    topic = make_topic()
    kafka_broker.create_topic(f"{topic}-dlt")
    configure(kafka_settings, topic, FAILURE_POLICY="dead-letter", CIRCUIT_BREAKER=2)

    def receiver(sender, message, **kwargs):
        raise ConnectionError("database is down")

    connect(topic, receiver)
    produce(kafka_broker.bootstrap_servers, topic, [{"n": i} for i in range(4)])

    with pytest.raises(CommandError, match="consecutive messages failed") as raised:
        call_command("consume_events", topic=topic, max_messages=4)

    assert raised.value.returncode == EXIT_HANDLER_FAILED
    assert committed(kafka_broker.bootstrap_servers, kafka_settings.KAFKA_CONSUMER["GROUP_ID"], topic, 1) == {0: 1}


@pytest.mark.broker
def test_a_receiver_past_the_hard_limit_ends_the_process_and_its_message_is_redelivered(
    kafka_broker, make_topic, group_id, tmp_path
):
    topic = make_topic()
    record = tmp_path / "record.txt"
    produce(kafka_broker.bootstrap_servers, topic, [{"id": 0}, {"id": 1, "sleep": 60}])
    limits = {"KAFKA_HANDLER_SOFT_TIMEOUT": "1", "KAFKA_HANDLER_HARD_TIMEOUT": "3"}
    process = ConsumerProcess(kafka_broker.bootstrap_servers, topic, record, group=group_id, env=limits)
    try:
        code = process.wait(timeout=60)
    finally:
        process.kill()

    output = process.output()
    assert code == EXIT_STALLED, output
    assert "soft limit" in output and "in behave" in output, "the stalled receiver's stack was not logged"
    assert [r.id for r in read_records(record)] == [0]
    assert committed(kafka_broker.bootstrap_servers, group_id, topic, 1) == {0: 1}


@pytest.mark.broker
def test_a_second_signal_during_a_retry_backoff_is_not_needed_to_stop_promptly(
    kafka_broker, make_topic, group_id, tmp_path
):
    topic = make_topic()
    record = tmp_path / "record.txt"
    produce(kafka_broker.bootstrap_servers, topic, [{"id": 0, "fail": True}])
    env = {"KAFKA_RETRY_ATTEMPTS": "10", "KAFKA_RETRY_BACKOFF": "30", "KAFKA_RETRY_MAX_BACKOFF": "30"}
    process = ConsumerProcess(kafka_broker.bootstrap_servers, topic, record, group=group_id, env=env)
    try:
        wait_for(lambda: "will be retried" in process.output(), 60, "the first failure and its scheduled retry")
        process.send(signal.SIGTERM)
        code = process.wait(timeout=10)
    finally:
        process.kill()

    assert code == 0, process.output()
    assert committed(kafka_broker.bootstrap_servers, group_id, topic, 1) == {0: -1001}


def test_a_dead_letter_producer_option_librdkafka_refuses_stops_the_command_with_one_line(settings, connect):
    topic = "never-consumed"
    settings.KAFKA_CONSUMER = {
        **settings.KAFKA_CONSUMER,
        "FAILURE_POLICY": "dead-letter",
        "PRODUCER_CONFIG": {"acks": "sometimes"},
    }
    connect(topic, lambda sender, message, **kwargs: None)

    with pytest.raises(CommandError, match=r"dead-letter producer's configuration .*PRODUCER_CONFIG") as raised:
        call_command("consume_events", topic=topic, max_messages=1)

    assert raised.value.returncode == 1 and "\n" not in str(raised.value)


@pytest.mark.broker
def test_a_key_that_cannot_be_decoded_is_parked_as_malformed_once_a_receiver_reads_it(
    kafka_settings, kafka_broker, make_topic, connect
):
    topic = make_topic()
    kafka_broker.create_topic(f"{topic}-dlt")
    configure(kafka_settings, topic, FAILURE_POLICY="dead-letter", RETRY={"ATTEMPTS": 3, "INITIAL_BACKOFF": 0.2})
    keys, values_only = [], []

    def reads_the_key(sender, message, **kwargs):
        keys.append(message.key)

    def reads_the_value(sender, message, **kwargs):
        values_only.append(message.value["n"])

    connect(topic, reads_the_value)
    connect(topic, reads_the_key)
    # The default KEY_DESERIALIZER is 'str': b"\xff" is not UTF-8.
    values = [{"n": 0}, {"n": 1}]
    produce(kafka_broker.bootstrap_servers, topic, values, key=lambda index: b"\xff" if index == 0 else "ok")

    call_command("consume_events", topic=topic, max_messages=2)

    parked = read_topic(kafka_broker.bootstrap_servers, f"{topic}-dlt", 1)[0]
    headers = dict(parked.headers())
    assert (headers[HEADER_REASON], headers[HEADER_ATTEMPTS]) == (b"malformed", b"1"), "a malformed key was retried"
    assert parked.key() == b"\xff"
    assert keys == ["ok"] and values_only == [0, 1]
    assert committed(kafka_broker.bootstrap_servers, kafka_settings.KAFKA_CONSUMER["GROUP_ID"], topic, 1) == {0: 2}


@pytest.mark.broker
def test_a_key_that_cannot_be_decoded_does_not_fail_a_message_whose_receivers_never_read_it(
    kafka_settings, kafka_broker, make_topic, connect
):
    topic = make_topic()
    configure(kafka_settings, topic, FAILURE_POLICY="stop", DEAD_LETTER_TOPIC=None)
    handled = []
    connect(topic, lambda sender, message, **kwargs: handled.append(message.value["n"]))
    produce(kafka_broker.bootstrap_servers, topic, [{"n": 0}, {"n": 1}], key=lambda index: b"\xff")

    call_command("consume_events", topic=topic, max_messages=2)

    assert handled == [0, 1]
    assert committed(kafka_broker.bootstrap_servers, kafka_settings.KAFKA_CONSUMER["GROUP_ID"], topic, 1) == {0: 2}
