"""
Every documented setting is validated: a wrong value of any key is reported, with an id and a hint.

The first part walks SETTINGS_DOC, TOPIC_SETTINGS_DOC and RETRY_DOC: each key has a wrong value
below, and ``problems()`` must report a problem naming that key. A key added to the docs
without a case here fails ``test_every_documented_setting_has_a_wrong_value_case``.
The second part pins the checks E040 and up, and the gaps they closed.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from kafka_consumer_app.exceptions import ConfigurationError
from kafka_consumer_app.settings import topics
from kafka_consumer_app.settings.base import Problem
from kafka_consumer_app.settings.failures import RETRY_DOC
from kafka_consumer_app.settings.topics import SETTINGS_DOC, TOPIC_SETTINGS_DOC

VALID = {"BOOTSTRAP_SERVERS": "kafka-1:9092", "GROUP_ID": "svc"}

#: A wrong value of every top-level key: wrong types, negative or zero numbers, unknown choices.
TOP_LEVEL_CASES = {
    "BOOTSTRAP_SERVERS": ["kafka-1:9092", 9093],
    "GROUP_ID": 42,
    "TOPIC_PREFIX": "prod/eu",
    "CONSUMER_CONFIG": {"session.timeout.ms": None},
    "TOPICS": ["orders"],
    "MANIFESTS": "all",
    "POLL_TIMEOUT": -1,
    "CONNECT_TIMEOUT": "30",
    "PROGRESS_INTERVAL": 0,
    "RETRY": {"ATTEMPTS": 0},
    "FAILURE_POLICY": "retry-forever",
    "CIRCUIT_BREAKER": -2,
    "HANDLER_SOFT_TIMEOUT": -5,
    "HANDLER_HARD_TIMEOUT": "90",
    "HEARTBEAT_FILE": 7,
    "HEARTBEAT_MAX_AGE": -60,
    "HEALTH_PORT": -1,
    "HEALTH_HOST": 5,
    "PRODUCER_CONFIG": ["linger.ms"],
    "SCHEMA_REGISTRY": "https://registry:8081",
    "CONCURRENCY": 0,
    "ORDERING": "random",
    "MAX_QUEUED": True,
    "BATCH_SIZE": 0,
    "BATCH_WAIT": -0.5,
    "DATABASE_ERRORS": ["no_such_module_xyz.Down"],
    "DATABASE_OUTAGE_TIMEOUT": 0,
    "CONTROL_INTERVAL": -5,
    "TRACING": "zipkin",
    "OFFSET_STORE": "redis",
    "DATABASE": "nowhere",
}

#: A wrong value of every per-topic key (under TOPICS['orders']).
TOPIC_CASES = {
    "GROUP_ID": 42,
    "DESERIALIZER": "yaml",
    "KEY_DESERIALIZER": "no_such_module_xyz.loads",
    "OPENEDX_EVENTS": "yes",
    "CONSUMER_CONFIG": {"max.poll.interval.ms": "five minutes"},
    "RETRY": {"MULTIPLIER": 0.5},
    "FAILURE_POLICY": "ignore",
    "DEAD_LETTER_TOPIC": "orders dead letters",
    "CIRCUIT_BREAKER": 0,
    "HANDLER_SOFT_TIMEOUT": -1,
    "HANDLER_HARD_TIMEOUT": -1,
    "REPLICAS": -1,
    "PARTITIONS": "three",
    "KEDA": "yes",
    "MIN_REPLICAS": -1,
    "MAX_REPLICAS": "many",
    "LAG_THRESHOLD": -5,
    "ACTIVATION_LAG_THRESHOLD": -1,
    "LIMIT_TO_PARTITIONS_WITH_LAG": "yes",
    "EXCLUDE_PERSISTENT_LAG": "no",
    "MEMORY_REQUEST": "lots",
    "MEMORY_LIMIT": "lots",
    "CPU_REQUEST": "lots",
    "CONCURRENCY": "8",
    "ORDERING": None,
    "MAX_QUEUED": 0,
    "BATCH_SIZE": 2.5,
    "BATCH_WAIT": "soon",
    "OFFSET_STORE": None,
    "DATABASE": 0,
}

#: A wrong value of every RETRY key (top level).
RETRY_CASES = {
    "ATTEMPTS": 2.5,
    "INITIAL_BACKOFF": -1,
    "MAX_BACKOFF": False,
    "MULTIPLIER": 0,
    "JITTER": 1.5,
    "NOT_RETRIED": "json.JSONDecodeError",
}


def ids(found: list[Problem]) -> list[str]:
    return [problem.id.removeprefix("kafka_consumer_app.") for problem in found]


def problems_with(settings, value: dict, topic: str | None = None) -> list[Problem]:
    settings.KAFKA_CONSUMER = value
    return topics.problems(topic=topic)


# -- every documented key ------------------------------------------------------------------------


def test_every_documented_setting_has_a_wrong_value_case():
    assert (set(SETTINGS_DOC), set(TOPIC_SETTINGS_DOC), set(RETRY_DOC)) == (
        set(TOP_LEVEL_CASES),
        set(TOPIC_CASES),
        set(RETRY_CASES),
    )


@pytest.mark.parametrize(("key", "value"), TOP_LEVEL_CASES.items(), ids=list(TOP_LEVEL_CASES))
def test_a_wrong_top_level_value_is_reported_naming_its_key(settings, key, value):
    found = problems_with(settings, {**VALID, key: value})
    assert [p for p in found if key in p.msg and p.hint and p.id.startswith("kafka_consumer_app.E")], found


@pytest.mark.parametrize(("key", "value"), TOPIC_CASES.items(), ids=list(TOPIC_CASES))
def test_a_wrong_topic_value_is_reported_naming_its_key(settings, key, value):
    found = problems_with(settings, {**VALID, "TOPICS": {"orders": {key: value}}})
    named = [p for p in found if key in p.msg or (key == "CONSUMER_CONFIG" and "max.poll.interval.ms" in p.msg)]
    assert [p for p in named if "'orders'" in p.msg and p.hint], found


@pytest.mark.parametrize(("key", "value"), RETRY_CASES.items(), ids=list(RETRY_CASES))
def test_a_wrong_retry_value_is_reported_naming_its_key(settings, key, value):
    found = problems_with(settings, {**VALID, "RETRY": {key: value}})
    assert [p for p in found if key in p.msg and p.hint], found


def test_a_complete_production_configuration_has_no_problem(settings):
    found = problems_with(
        settings,
        {
            "BOOTSTRAP_SERVERS": ["kafka-1:9093", "kafka-2:9093"],
            "GROUP_ID": "credentials-service",
            "TOPIC_PREFIX": "prod",
            "CONSUMER_CONFIG": {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "svc",
                "sasl.password": "from-the-environment",
                "ssl.ca.location": "/etc/kafka/ca.pem",
                "session.timeout.ms": 45000,
                "max.poll.interval.ms": "600000",
                "enable.partition.eof": False,
                "oauth_cb": lambda config: ("token", 0.0),
            },
            "PRODUCER_CONFIG": {"linger.ms": 0},
            "HANDLER_HARD_TIMEOUT": 500,
            "TOPICS": {
                "user-events": {"GROUP_ID": "credentials-user-events", "DEAD_LETTER_TOPIC": "prod-user-events.dlt"},
                "audit_log.v1": {"DEAD_LETTER_TOPIC": None, "FAILURE_POLICY": "skip"},
            },
        },
        topic="user-events",
    )
    assert found == []


# -- E040 and up ----------------------------------------------------------------------------------


@pytest.mark.parametrize("servers", [["kafka-1:9092", 9092], ["kafka-1:9092", ""], "kafka-1:9092,,kafka-2:9092", "  "])
def test_e040_a_bootstrap_entry_that_is_empty_or_not_a_string(settings, servers):
    assert ids(problems_with(settings, {**VALID, "BOOTSTRAP_SERVERS": servers})) == ["E040"]


@pytest.mark.parametrize(
    ("where", "config"),
    [
        ("CONSUMER_CONFIG", {"sasl.password": ["not-this"]}),
        ("CONSUMER_CONFIG", {"session.timeout.ms": None}),
        ("CONSUMER_CONFIG", {5000: "session.timeout.ms"}),
        ("PRODUCER_CONFIG", {"linger.ms": {"value": 5}}),
    ],
)
def test_e041_a_librdkafka_option_that_is_not_a_string_number_or_boolean(settings, where, config):
    found = problems_with(settings, {**VALID, where: config})
    assert ids(found) == ["E041"]
    assert "not-this" not in found[0].msg + found[0].hint  # a value may be a secret: it is never quoted


def test_e041_also_applies_to_a_topics_consumer_config(settings):
    found = problems_with(settings, {**VALID, "TOPICS": {"orders": {"CONSUMER_CONFIG": {"ssl.key.password": None}}}})
    assert ids(found) == ["E041"]
    assert "'orders'" in found[0].msg and "'ssl.key.password'" in found[0].msg


@pytest.mark.parametrize("protocol", ["TLS", "sasl-ssl", "SASL"])
def test_e042_an_unknown_security_protocol(settings, protocol):
    found = problems_with(settings, {**VALID, "CONSUMER_CONFIG": {"security.protocol": protocol}})
    assert ids(found) == ["E042"]
    assert "SASL_SSL" in found[0].hint


def test_e042_accepts_any_case_as_librdkafka_does(settings):
    assert problems_with(settings, {**VALID, "CONSUMER_CONFIG": {"security.protocol": "sasl_ssl"}}) == []


@pytest.mark.parametrize(("key", "mechanism"), [("sasl.mechanism", "scram-sha-512"), ("sasl.mechanisms", "SCRAM")])
def test_e043_an_unknown_sasl_mechanism(settings, key, mechanism):
    found = problems_with(settings, {**VALID, "CONSUMER_CONFIG": {key: mechanism}})
    assert ids(found) == ["E043"]
    assert "SCRAM-SHA-512" in found[0].hint


@pytest.mark.parametrize("missing", ["sasl.username", "sasl.password"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_e044_sasl_with_a_password_mechanism_needs_username_and_password(settings, mechanism, missing):
    config = {"security.protocol": "SASL_SSL", "sasl.mechanism": mechanism, "sasl.username": "u", "sasl.password": "p"}
    del config[missing]
    found = problems_with(settings, {**VALID, "CONSUMER_CONFIG": config})
    assert ids(found) == ["E044"]
    assert missing in found[0].msg


def test_e044_looks_at_a_topics_config_merged_over_the_top_level(settings):
    top = {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "u", "sasl.password": "p"}
    value = {**VALID, "CONSUMER_CONFIG": top, "TOPICS": {"orders": {"CONSUMER_CONFIG": {"sasl.password": ""}}}}
    found = problems_with(settings, value)
    assert ids(found) == ["E044"]
    assert "'orders'" in found[0].msg
    # A topic that only changes the user keeps the top-level password: nothing to report.
    value["TOPICS"]["orders"]["CONSUMER_CONFIG"] = {"sasl.username": "orders-user"}
    assert problems_with(settings, value) == []


@pytest.mark.parametrize(
    "value",
    [
        {**VALID, "TOPIC_PREFIX": "prod eu"},
        {**VALID, "TOPICS": {"orders/eu": {}}},
        {**VALID, "TOPICS": {"orders": {"DEAD_LETTER_TOPIC": "orders#dlt"}}},
    ],
    ids=["prefix", "topic-key", "dead-letter-topic"],
)
def test_e045_names_that_kafka_would_refuse_as_topic_names(settings, value):
    assert ids(problems_with(settings, value)) == ["E045"]


@pytest.mark.parametrize("group", [42, "", ["a"]])
def test_e046_a_topics_group_id_must_be_a_non_empty_string(settings, group):
    assert ids(problems_with(settings, {**VALID, "TOPICS": {"orders": {"GROUP_ID": group}}})) == ["E046"]


@pytest.mark.parametrize("not_retried", ["json.JSONDecodeError", 5])
def test_e047_not_retried_must_be_a_list_and_never_crashes_the_checks(settings, not_retried):
    # A string used to be checked letter by letter, and an int raised TypeError inside `manage.py check`.
    assert ids(problems_with(settings, {**VALID, "RETRY": {"NOT_RETRIED": not_retried}})) == ["E047"]


@pytest.mark.parametrize("interval", ["five minutes", 0, -1, True, None])
def test_e048_max_poll_interval_must_be_a_positive_number(settings, interval):
    value = {**VALID, "HANDLER_HARD_TIMEOUT": 60, "CONSUMER_CONFIG": {"max.poll.interval.ms": interval}}
    assert "E048" in ids(problems_with(settings, value))


def test_e048_stops_the_command_with_one_line_instead_of_a_value_error(settings):
    # get_topic_config derives HANDLER_HARD_TIMEOUT's default from max.poll.interval.ms: it used to raise ValueError.
    settings.KAFKA_CONSUMER = {**VALID, "CONSUMER_CONFIG": {"max.poll.interval.ms": "five minutes"}}
    with pytest.raises(ConfigurationError, match=r"kafka_consumer_app\.E048"):
        topics.get_topic_config("orders")


# -- gaps in the older checks --------------------------------------------------------------------


@pytest.mark.parametrize("key", ["INITIAL_BACKOFF", "MAX_BACKOFF", "JITTER"])
def test_a_boolean_is_not_a_number_of_seconds_in_retry(settings, key):
    assert ids(problems_with(settings, {**VALID, "RETRY": {key: False}})) == ["E013"]


def test_a_topic_hard_timeout_is_checked_against_the_merged_max_poll_interval(settings):
    value = {
        **VALID,
        "CONSUMER_CONFIG": {"max.poll.interval.ms": 60000},
        "TOPICS": {"orders": {"HANDLER_HARD_TIMEOUT": 90}},
    }
    found = problems_with(settings, value)
    assert ids(found) == ["E017"]
    assert "'orders'" in found[0].msg


def test_the_top_level_hard_timeout_is_checked_against_each_topics_max_poll_interval(settings):
    value = {
        **VALID,
        "HANDLER_HARD_TIMEOUT": 120,
        "TOPICS": {"orders": {"CONSUMER_CONFIG": {"max.poll.interval.ms": 60000}}},
    }
    found = problems_with(settings, value)
    assert ids(found) == ["E017"]
    assert "'orders'" in found[0].msg


def test_a_topic_without_dead_letter_topic_cannot_inherit_the_dead_letter_policy(settings):
    value = {**VALID, "FAILURE_POLICY": "dead-letter", "TOPICS": {"orders": {"DEAD_LETTER_TOPIC": None}}}
    found = problems_with(settings, value)
    assert ids(found) == ["E014"]
    assert "inherits" in found[0].msg


def test_a_dead_letter_topic_that_is_the_prefixed_topic_itself(settings):
    value = {**VALID, "TOPIC_PREFIX": "prod", "TOPICS": {"orders": {"DEAD_LETTER_TOPIC": "prod-orders"}}}
    assert ids(problems_with(settings, value)) == ["E015"]


def test_a_managed_option_in_producer_config_is_refused(settings):
    found = problems_with(settings, {**VALID, "PRODUCER_CONFIG": {"bootstrap.servers": "other:9092"}})
    assert ids(found) == ["E008"]
    assert "PRODUCER_CONFIG" in found[0].msg


# -- manage.py check ------------------------------------------------------------------------------


def test_manage_py_check_reports_the_new_checks_with_their_hints(settings):
    settings.KAFKA_CONSUMER = {
        **VALID,
        "CONSUMER_CONFIG": {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "u"},
    }
    with pytest.raises(SystemCheckError) as caught:
        call_command("check", stdout=StringIO(), stderr=StringIO())
    assert "kafka_consumer_app.E044" in str(caught.value)
    assert "HINT: Set sasl.username and sasl.password" in str(caught.value)


@pytest.mark.parametrize(("key", "value"), [("CONCURRENCY", 2**70), ("MAX_QUEUED", 10**12), ("BATCH_SIZE", 10**9)])
def test_a_count_too_large_to_allocate_is_refused_naming_its_range(settings, key, value):
    found = problems_with(settings, {**VALID, key: value})
    assert ids(found) == ["E023"] and "must be an integer from 1 to" in found[0].msg
