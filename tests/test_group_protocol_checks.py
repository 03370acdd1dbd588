"""The checks of the consumer group protocol (E110-E112): a value librdkafka does not know, and options it refuses."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from kafka_consumer_app.exceptions import ConfigurationError
from kafka_consumer_app.settings import topics
from kafka_consumer_app.settings.group_protocol import CLASSIC_ONLY_OPTIONS
from kafka_consumer_app.settings.topics import get_topic_config

VALID = {"BOOTSTRAP_SERVERS": "kafka-1:9092", "GROUP_ID": "svc"}
CONSUMER = {"group.protocol": "consumer"}


def ids_with(settings, value: dict) -> list[str]:
    settings.KAFKA_CONSUMER = value
    return [problem.id.removeprefix("kafka_consumer_app.") for problem in topics.problems()]


def found_with(settings, value: dict):
    settings.KAFKA_CONSUMER = value
    return topics.problems()


@pytest.mark.parametrize("protocol", ["modern", "", 2, True])
def test_e110_a_group_protocol_librdkafka_does_not_know(settings, protocol):
    assert ids_with(settings, {**VALID, "CONSUMER_CONFIG": {"group.protocol": protocol}}) == ["E110"]


@pytest.mark.parametrize("protocol", ["consumer", "Consumer", "classic", "CLASSIC"])
def test_both_protocols_are_accepted_in_any_case_as_librdkafka_reads_them(settings, protocol):
    assert ids_with(settings, {**VALID, "CONSUMER_CONFIG": {"group.protocol": protocol}}) == []


@pytest.mark.parametrize("option", sorted(CLASSIC_ONLY_OPTIONS))
def test_e111_an_option_the_consumer_protocol_refuses_is_reported_on_one_line_with_what_replaces_it(settings, option):
    found = found_with(settings, {**VALID, "CONSUMER_CONFIG": {**CONSUMER, option: "x"}})
    assert [problem.id for problem in found] == ["kafka_consumer_app.E111"]
    assert option in found[0].msg and "\n" not in found[0].msg
    assert found[0].hint.startswith("Remove it")


def test_e111_reports_each_refused_option(settings):
    config = {**CONSUMER, "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000}
    assert ids_with(settings, {**VALID, "CONSUMER_CONFIG": config}) == ["E111", "E111"]


def test_the_same_options_are_fine_under_the_classic_protocol(settings):
    config = {"group.protocol": "classic", "session.timeout.ms": 10000, "partition.assignment.strategy": "range"}
    assert ids_with(settings, {**VALID, "CONSUMER_CONFIG": config}) == []


def test_e111_looks_at_a_topics_config_merged_over_the_top_level(settings):
    value = {
        **VALID,
        "CONSUMER_CONFIG": {"session.timeout.ms": 10000},
        "TOPICS": {"orders": {"CONSUMER_CONFIG": CONSUMER}},
    }
    found = found_with(settings, value)
    assert [problem.id for problem in found] == ["kafka_consumer_app.E111"]
    assert "TOPICS" in found[0].msg and "orders" in found[0].msg


def test_a_problem_of_the_top_level_is_reported_once_not_again_per_topic(settings):
    value = {
        **VALID,
        "CONSUMER_CONFIG": {**CONSUMER, "session.timeout.ms": 10000},
        "TOPICS": {"orders": {"CONSUMER_CONFIG": {"client.id": "orders"}}},
    }
    assert ids_with(settings, value) == ["E111"]


def test_a_topic_may_go_back_to_the_classic_protocol_with_its_own_session(settings):
    value = {
        **VALID,
        "CONSUMER_CONFIG": CONSUMER,
        "TOPICS": {"orders": {"CONSUMER_CONFIG": {"group.protocol": "classic", "session.timeout.ms": 10000}}},
    }
    assert ids_with(settings, value) == []


def test_e112_a_remote_assignor_without_the_consumer_protocol(settings):
    assert ids_with(settings, {**VALID, "CONSUMER_CONFIG": {"group.remote.assignor": "uniform"}}) == ["E112"]


def test_a_remote_assignor_with_the_consumer_protocol_is_fine(settings):
    assert ids_with(settings, {**VALID, "CONSUMER_CONFIG": {**CONSUMER, "group.remote.assignor": "range"}}) == []


def test_manage_py_check_refuses_a_session_timeout_under_the_consumer_protocol_with_its_hint(settings):
    settings.KAFKA_CONSUMER = {**VALID, "CONSUMER_CONFIG": {**CONSUMER, "session.timeout.ms": 10000}}
    with pytest.raises(SystemCheckError) as caught:
        call_command("check", stdout=StringIO(), stderr=StringIO())
    assert "kafka_consumer_app.E111" in str(caught.value)
    assert "group.consumer.session.timeout.ms" in str(caught.value)


def test_the_consumer_refuses_to_start_on_e111_with_one_line(settings):
    settings.KAFKA_CONSUMER = {**VALID, "CONSUMER_CONFIG": {**CONSUMER, "heartbeat.interval.ms": 1000}}
    with pytest.raises(ConfigurationError, match=r"kafka_consumer_app\.E111") as caught:
        get_topic_config("orders")
    assert "\n" not in str(caught.value)
