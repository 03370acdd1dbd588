"""KAFKA_CONSUMER validation (topics.problems and `manage.py check`), topic resolution and the client config."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError

from kafka_consumer_app.engine.client import admin_options, producer_options
from kafka_consumer_app.engine.consumer import EventConsumer
from kafka_consumer_app.exceptions import ConfigurationError
from kafka_consumer_app.settings import share_groups, topics
from kafka_consumer_app.settings.base import Problem
from kafka_consumer_app.settings.connection import MANAGED_OPTIONS
from kafka_consumer_app.settings.topics import get_topic_config

VALID = {"BOOTSTRAP_SERVERS": "127.0.0.1:9092", "GROUP_ID": "svc"}
NO_GROUP = {"BOOTSTRAP_SERVERS": "127.0.0.1:9092"}
DELETE = object()

#: (check id, case, KAFKA_CONSUMER value or DELETE): settings with exactly one problem.
BAD_SETTINGS = [
    ("E001", "not-set", DELETE),
    ("E002", "a-list", ["127.0.0.1:9092"]),
    ("E002", "a-string", "127.0.0.1:9092"),
    ("E003", "unknown-key", {**VALID, "BOOTSTRAP_SERVER": "typo:9092"}),
    ("E003", "librdkafka-option-at-top-level", {**VALID, "security.protocol": "SSL"}),
    ("E004", "no-bootstrap", {"GROUP_ID": "svc"}),
    ("E004", "empty-bootstrap-string", {**VALID, "BOOTSTRAP_SERVERS": ""}),
    ("E004", "empty-bootstrap-list", {**VALID, "BOOTSTRAP_SERVERS": []}),
    ("E004", "bootstrap-an-int", {**VALID, "BOOTSTRAP_SERVERS": 9092}),
    ("E005", "poll-timeout-zero", {**VALID, "POLL_TIMEOUT": 0}),
    ("E005", "connect-timeout-negative", {**VALID, "CONNECT_TIMEOUT": -1}),
    ("E005", "progress-interval-a-string", {**VALID, "PROGRESS_INTERVAL": "60"}),
    ("E005", "poll-timeout-a-bool", {**VALID, "POLL_TIMEOUT": True}),
    ("E005", "connect-timeout-none", {**VALID, "CONNECT_TIMEOUT": None}),
    ("E006", "group-id-an-int", {**VALID, "GROUP_ID": 42}),
    ("E006", "topic-prefix-a-list", {**VALID, "TOPIC_PREFIX": ["prod"]}),
    ("E007", "consumer-config-a-string", {**VALID, "CONSUMER_CONFIG": "security.protocol=SSL"}),
    (
        "E007",
        "topic-consumer-config-a-list",
        {**VALID, "TOPICS": {"orders": {"CONSUMER_CONFIG": [("security.protocol", "SSL")]}}},
    ),
    ("E008", "managed-option", {**VALID, "CONSUMER_CONFIG": {"group.id": "other"}}),
    (
        "E008",
        "topic-managed-option",
        {**VALID, "TOPICS": {"orders": {"CONSUMER_CONFIG": {"enable.auto.commit": False}}}},
    ),
    ("E009", "topics-a-list", {**VALID, "TOPICS": ["orders"]}),
    ("E009", "topic-overrides-a-string", {**VALID, "TOPICS": {"orders": "json"}}),
    ("E011", "unknown-topic-key", {**VALID, "TOPICS": {"orders": {"GROUPID": "x"}}}),
    ("E012", "unknown-deserializer-name", {**VALID, "TOPICS": {"orders": {"DESERIALIZER": "yaml"}}}),
    (
        "E012",
        "key-deserializer-not-importable",
        {**VALID, "TOPICS": {"orders": {"KEY_DESERIALIZER": "no_such_module_xyz.decode"}}},
    ),
    ("E012", "deserializer-not-callable", {**VALID, "TOPICS": {"orders": {"DESERIALIZER": "os.sep"}}}),
]


def configure(settings, value) -> None:
    if value is DELETE:
        del settings.KAFKA_CONSUMER
    else:
        settings.KAFKA_CONSUMER = value


def ids(found: list[Problem]) -> list[str]:
    return [problem.id.removeprefix("kafka_consumer_app.") for problem in found]


# -- topics.problems --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check_id", "case", "value"), BAD_SETTINGS, ids=[f"{i}-{case}" for i, case, _ in BAD_SETTINGS]
)
def test_problems_reports_an_invalid_setting_with_its_check_id(settings, check_id, case, value):
    configure(settings, value)
    assert ids(topics.problems()) == [check_id]


def test_problems_reports_nothing_for_valid_settings(settings):
    settings.KAFKA_CONSUMER = {
        **VALID,
        "TOPIC_PREFIX": "prod",
        "BOOTSTRAP_SERVERS": ["kafka-1:9092", "kafka-2:9092"],
        "CONSUMER_CONFIG": {"security.protocol": "SASL_SSL"},
        "POLL_TIMEOUT": 0.5,
        "CONNECT_TIMEOUT": 5,
        "PROGRESS_INTERVAL": 30.0,
        "TOPICS": {"orders": {"GROUP_ID": "o", "DESERIALIZER": "str", "KEY_DESERIALIZER": "json.loads"}},
    }
    assert topics.problems(topic="orders") == []


@pytest.mark.parametrize("key", ["POLL_TIMEOUT", "CONNECT_TIMEOUT", "PROGRESS_INTERVAL", "HEARTBEAT_MAX_AGE"])
def test_problems_reports_a_nan_number_of_seconds_as_e005(settings, key):
    # float("nan") <= 0 is False; a NaN CONNECT_TIMEOUT makes the connection wait endless.
    settings.KAFKA_CONSUMER = {**VALID, key: float("nan")}
    assert ids(topics.problems()) == ["E005"]


@pytest.mark.parametrize("option", sorted(MANAGED_OPTIONS))
def test_every_managed_librdkafka_option_is_refused_in_consumer_config(settings, option):
    settings.KAFKA_CONSUMER = {**VALID, "CONSUMER_CONFIG": {option: "x"}}
    assert ids(topics.problems()) == ["E008"]


@pytest.mark.parametrize("option", sorted(MANAGED_OPTIONS))
def test_every_managed_librdkafka_option_is_refused_in_a_topic_consumer_config(settings, option):
    settings.KAFKA_CONSUMER = {**VALID, "TOPICS": {"orders": {"CONSUMER_CONFIG": {option: "x"}}}}
    assert ids(topics.problems()) == ["E008"]


def test_a_managed_option_problem_names_the_option_and_where_it_was_set(settings):
    settings.KAFKA_CONSUMER = {**VALID, "TOPICS": {"orders": {"CONSUMER_CONFIG": {"group.id": "x"}}}}
    assert topics.problems()[0].msg == (
        "KAFKA_CONSUMER['TOPICS']['orders']['CONSUMER_CONFIG'] sets 'group.id', which kafka_consumer_app manages"
    )


def test_problems_reports_e010_for_a_topic_without_any_group(settings):
    settings.KAFKA_CONSUMER = NO_GROUP
    assert ids(topics.problems(topic="orders")) == ["E010"]


def test_problems_accepts_a_topic_without_group_when_a_group_override_is_given(settings):
    settings.KAFKA_CONSUMER = NO_GROUP
    assert topics.problems(topic="orders", group_override="from-cli") == []


def test_problems_accepts_a_topic_with_its_own_group_and_no_default_group(settings):
    settings.KAFKA_CONSUMER = {**NO_GROUP, "TOPICS": {"orders": {"GROUP_ID": "orders-group"}}}
    assert topics.problems(topic="orders") == []


def test_problems_reports_every_problem_not_just_the_first(settings):
    settings.KAFKA_CONSUMER = {"UNKNOWN": 1, "POLL_TIMEOUT": -1, "CONSUMER_CONFIG": {"group.id": "x"}}
    assert ids(topics.problems()) == ["E003", "E004", "E005", "E008"]


def test_every_problem_has_a_hint(settings):
    settings.KAFKA_CONSUMER = {"UNKNOWN": 1, "POLL_TIMEOUT": -1, "GROUP_ID": 3, "CONSUMER_CONFIG": []}
    assert all(problem.hint for problem in topics.problems(topic="orders"))


def test_problem_one_line_shows_message_id_and_hint_on_one_line():
    problem = Problem("kafka_consumer_app.E999", "something is wrong", "Fix it.")
    assert problem.one_line() == "something is wrong (kafka_consumer_app.E999). Fix it."


# -- manage.py check ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check_id", "value"),
    [
        ("E001", DELETE),
        ("E004", {"GROUP_ID": "svc"}),
        ("E008", {**VALID, "CONSUMER_CONFIG": {"enable.auto.offset.store": True}}),
        ("E012", {**VALID, "TOPICS": {"orders": {"DESERIALIZER": "yaml"}}}),
    ],
)
def test_check_command_fails_with_system_check_error_naming_the_check_id(settings, check_id, value):
    configure(settings, value)
    with pytest.raises(SystemCheckError, match=f"kafka_consumer_app.{check_id}"):
        call_command("check", stdout=StringIO(), stderr=StringIO())


def test_check_command_shows_the_hint_of_a_problem(settings):
    settings.KAFKA_CONSUMER = {"GROUP_ID": "svc"}
    with pytest.raises(SystemCheckError, match="HINT: Set it to the brokers' 'host:port' list"):
        call_command("check", stdout=StringIO(), stderr=StringIO())


def test_check_command_passes_with_valid_settings(settings):
    settings.KAFKA_CONSUMER = {**VALID, "TOPICS": {"orders": {"DESERIALIZER": "str"}}}
    out = StringIO()
    call_command("check", stdout=out, stderr=StringIO())
    assert "System check identified no issues" in out.getvalue()


# -- get_topic_config -----------------------------------------------------------------------


def test_group_id_option_wins_over_the_topic_group_and_the_default_group(settings):
    settings.KAFKA_CONSUMER = {**VALID, "TOPICS": {"orders": {"GROUP_ID": "topic-group"}}}
    assert get_topic_config("orders", group_override="cli-group").group_id == "cli-group"


def test_topic_group_wins_over_the_default_group(settings):
    settings.KAFKA_CONSUMER = {**VALID, "TOPICS": {"orders": {"GROUP_ID": "topic-group"}}}
    assert get_topic_config("orders").group_id == "topic-group"


def test_default_group_applies_to_a_topic_without_its_own(settings):
    settings.KAFKA_CONSUMER = {**VALID, "TOPICS": {"other": {"GROUP_ID": "other-group"}}}
    assert get_topic_config("orders").group_id == "svc"


def test_topic_prefix_makes_the_kafka_topic_prefix_dash_topic(settings):
    settings.KAFKA_CONSUMER = {**VALID, "TOPIC_PREFIX": "prod"}
    assert get_topic_config("user-events").kafka_topic == "prod-user-events"


def test_topic_prefix_keeps_the_unprefixed_topic_name_for_receivers(settings):
    settings.KAFKA_CONSUMER = {**VALID, "TOPIC_PREFIX": "prod"}
    assert get_topic_config("user-events").topic == "user-events"


def test_without_topic_prefix_the_kafka_topic_is_the_topic(settings):
    settings.KAFKA_CONSUMER = VALID
    assert get_topic_config("user-events").kafka_topic == "user-events"


def test_topic_overrides_are_looked_up_by_the_unprefixed_name(settings):
    settings.KAFKA_CONSUMER = {**VALID, "TOPIC_PREFIX": "prod", "TOPICS": {"user-events": {"GROUP_ID": "users"}}}
    assert get_topic_config("user-events").group_id == "users"


def test_topic_consumer_config_is_merged_over_the_top_level_one(settings):
    settings.KAFKA_CONSUMER = {
        **VALID,
        "CONSUMER_CONFIG": {"security.protocol": "SASL_SSL", "auto.offset.reset": "earliest"},
        "TOPICS": {"orders": {"CONSUMER_CONFIG": {"auto.offset.reset": "latest", "fetch.min.bytes": 10}}},
    }
    assert dict(get_topic_config("orders").consumer_config) == {
        "security.protocol": "SASL_SSL",
        "auto.offset.reset": "latest",
        "fetch.min.bytes": 10,
    }


def test_another_topic_consumer_config_does_not_leak_into_this_topic(settings):
    settings.KAFKA_CONSUMER = {**VALID, "TOPICS": {"other": {"CONSUMER_CONFIG": {"fetch.min.bytes": 10}}}}
    assert dict(get_topic_config("orders").consumer_config) == {}


def test_bootstrap_servers_given_as_a_list_are_joined_with_commas(settings):
    settings.KAFKA_CONSUMER = {**VALID, "BOOTSTRAP_SERVERS": ["kafka-1:9092", "kafka-2:9092"]}
    assert get_topic_config("orders").bootstrap_servers == "kafka-1:9092,kafka-2:9092"


def test_topic_deserializers_default_to_json_values_and_str_keys(settings):
    settings.KAFKA_CONSUMER = VALID
    config = get_topic_config("orders")
    assert (config.deserializer, config.key_deserializer) == ("json", "str")


def test_topic_deserializers_come_from_the_topic_settings(settings):
    settings.KAFKA_CONSUMER = {**VALID, "TOPICS": {"orders": {"DESERIALIZER": "bytes", "KEY_DESERIALIZER": "json"}}}
    config = get_topic_config("orders")
    assert (config.deserializer, config.key_deserializer) == ("bytes", "json")


def test_number_settings_reach_the_topic_config(settings):
    settings.KAFKA_CONSUMER = {**VALID, "POLL_TIMEOUT": 0.25, "CONNECT_TIMEOUT": 3, "PROGRESS_INTERVAL": 9}
    config = get_topic_config("orders")
    assert (config.poll_timeout, config.connect_timeout, config.progress_interval) == (0.25, 3.0, 9.0)


def test_get_topic_config_raises_configuration_error_with_the_first_problem_on_one_line(settings):
    settings.KAFKA_CONSUMER = {**VALID, "CONSUMER_CONFIG": {"group.id": "x"}, "POLL_TIMEOUT": 0}
    with pytest.raises(ConfigurationError) as caught:
        get_topic_config("orders")
    assert str(caught.value) == topics.problems(topic="orders")[0].one_line()


def test_get_topic_config_raises_configuration_error_when_no_group_resolves(settings):
    settings.KAFKA_CONSUMER = NO_GROUP
    with pytest.raises(ConfigurationError, match=r"kafka_consumer_app\.E010"):
        get_topic_config("orders")


def test_settings_are_read_at_call_time_so_overrides_apply(settings):
    settings.KAFKA_CONSUMER = {**VALID, "GROUP_ID": "first"}
    get_topic_config("orders")
    settings.KAFKA_CONSUMER = {**VALID, "GROUP_ID": "second"}
    assert get_topic_config("orders").group_id == "second"


# -- EventConsumer.client_config ------------------------------------------------------------


def client_config(settings, **consumer_config) -> dict:
    settings.KAFKA_CONSUMER = {**VALID, "CONSUMER_CONFIG": consumer_config}
    return EventConsumer(get_topic_config("orders")).client_config()


def test_client_config_disables_automatic_offset_store(settings):
    assert client_config(settings)["enable.auto.offset.store"] is False


def test_client_config_commits_stored_offsets_automatically(settings):
    assert client_config(settings)["enable.auto.commit"] is True


def test_client_config_uses_cooperative_sticky_assignment(settings):
    assert client_config(settings)["partition.assignment.strategy"] == "cooperative-sticky"


def test_client_config_starts_from_the_earliest_offset_by_default(settings):
    assert client_config(settings)["auto.offset.reset"] == "earliest"


def test_client_config_lets_the_user_choose_auto_offset_reset(settings):
    assert client_config(settings, **{"auto.offset.reset": "latest"})["auto.offset.reset"] == "latest"


def test_client_config_omits_the_assignment_strategy_with_the_consumer_group_protocol(settings):
    assert "partition.assignment.strategy" not in client_config(settings, **{"group.protocol": "consumer"})


def test_client_config_omits_the_assignment_strategy_whatever_the_case_of_the_consumer_protocol(settings):
    # librdkafka reads group.protocol in any case, and refuses the strategy under "CONSUMER" too.
    assert "partition.assignment.strategy" not in client_config(settings, **{"group.protocol": "CONSUMER"})


def test_client_config_keeps_cooperative_sticky_under_the_classic_protocol_named(settings):
    assert client_config(settings, **{"group.protocol": "classic"})["partition.assignment.strategy"] == (
        "cooperative-sticky"
    )


def test_client_config_passes_user_options_through_verbatim(settings):
    assert client_config(settings, **{"security.protocol": "SASL_SSL"})["security.protocol"] == "SASL_SSL"


def test_client_config_uses_the_resolved_bootstrap_servers_and_group(settings):
    config = client_config(settings)
    assert (config["bootstrap.servers"], config["group.id"]) == ("127.0.0.1:9092", "svc")


def test_the_producer_and_admin_clients_reach_the_cluster_as_the_consumer_does(settings):
    def token(config):  # an OAUTHBEARER token callback, which every client of the cluster needs
        return "token", 0.0

    settings.KAFKA_CONSUMER = {
        **VALID,
        "CONSUMER_CONFIG": {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": token,
            "debug": "broker",
            "session.timeout.ms": 10000,
        },
    }
    config = get_topic_config("orders")
    shared = {"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER", "oauth_cb": token, "debug": "broker"}
    for options in (producer_options(config), admin_options(config, error_cb=print)):
        assert {key: options.get(key) for key in shared} == shared
        assert options["bootstrap.servers"] == "127.0.0.1:9092"
        assert "session.timeout.ms" not in options  # a consumer-only option stays with the consumer


@pytest.mark.parametrize(
    ("topic", "check"),
    [
        ({"SHARE_GROUP": 1}, "E120"),
        ({"SHARE_GROUP": True, "OFFSET_STORE": "database"}, "E121"),
        ({"SHARE_GROUP": True, "CONCURRENCY": 4}, "E122"),
    ],
)
def test_share_group_settings_that_make_no_sense_are_refused_with_one_line(settings, topic, check):
    settings.KAFKA_CONSUMER = {"BOOTSTRAP_SERVERS": "kafka:9092", "GROUP_ID": "svc", "TOPICS": {"orders": topic}}
    found = [problem for problem in topics.problems() if problem.id.endswith(check)]
    assert found and "SHARE_GROUP" in found[0].msg and found[0].hint and "\n" not in found[0].one_line()


def test_share_group_retries_past_the_broker_delivery_limit_are_warned_about(settings):
    orders = {"SHARE_GROUP": True, "RETRY": {"ATTEMPTS": 8}}
    settings.KAFKA_CONSUMER = {"BOOTSTRAP_SERVERS": "kafka:9092", "GROUP_ID": "svc", "TOPICS": {"orders": orders}}
    (warning,) = share_groups.delivery_limit_warnings()
    assert warning.id.endswith("W125") and "share.delivery.count.limit" in warning.hint


def test_share_group_option_refuses_concurrency_with_one_line(settings):
    settings.KAFKA_CONSUMER = {"BOOTSTRAP_SERVERS": "kafka:9092", "GROUP_ID": "svc", "CONCURRENCY": 4}
    with pytest.raises(CommandError, match=r"^--share-group excludes CONCURRENCY 4:.*E122") as raised:
        call_command("consume_events", "--topic", "orders", "--share-group")
    assert "\n" not in str(raised.value)


def test_share_group_option_refuses_from_beginning_with_one_line(settings):
    settings.KAFKA_CONSUMER = {"BOOTSTRAP_SERVERS": "kafka:9092", "GROUP_ID": "svc"}
    with pytest.raises(CommandError, match=r"--from-beginning and --offset-time do not apply to a share group"):
        call_command("consume_events", "--topic", "orders", "--share-group", "--from-beginning")
