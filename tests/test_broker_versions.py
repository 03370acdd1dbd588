"""The local broker runs the release it is asked for, with the settings that release knows."""

from __future__ import annotations

import pytest

from kafka_consumer_app.testing.broker import (
    DEFAULT_KAFKA_VERSION,
    KAFKA_VERSION_ENV,
    BrokerError,
    LocalKafkaBroker,
    kafka_version,
    main,
)


def test_the_default_release_is_used_when_nothing_names_another(monkeypatch):
    monkeypatch.delenv(KAFKA_VERSION_ENV, raising=False)
    assert kafka_version() == DEFAULT_KAFKA_VERSION


def broker_attribute(name, **kwargs):
    """An attribute of a broker that is made but never started (its empty directory removed)."""
    broker = LocalKafkaBroker(**kwargs)
    try:
        return getattr(broker, name)() if name == "properties" else getattr(broker, name)
    finally:
        broker.cleanup()


def test_the_environment_variable_picks_the_release(monkeypatch):
    monkeypatch.setenv(KAFKA_VERSION_ENV, "3.9.2")
    assert broker_attribute("version") == "3.9.2"


def test_an_explicit_version_wins_over_the_environment_variable(monkeypatch):
    monkeypatch.setenv(KAFKA_VERSION_ENV, "3.9.2")
    assert broker_attribute("version", version="4.1.1") == "4.1.1"


@pytest.mark.parametrize("version", ["3.8.1", "2.8.0"])
def test_a_release_older_than_3_9_is_refused_with_what_to_use(version):
    with pytest.raises(BrokerError, match=r"not supported by the local broker; use 3\.9 or newer"):
        kafka_version(version)


@pytest.mark.parametrize("version", ["latest", "4", "4.1.1-rc1", "../4.1.1"])
def test_a_version_that_is_not_a_release_number_is_refused(version):
    with pytest.raises(BrokerError, match="is not an Apache Kafka release"):
        kafka_version(version)


def test_fetch_with_a_refused_version_exits_1_with_one_line(capsys):
    assert main(["fetch", "--version", "3.8.1"]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_a_3_9_broker_is_not_given_the_share_coordinator_settings_of_4_x():
    assert not any(key.startswith("share.") for key in broker_attribute("properties", version="3.9.2"))


def test_a_4_x_broker_gets_a_share_state_topic_that_one_node_can_hold():
    props = broker_attribute("properties", version="4.1.1")
    assert props["share.coordinator.state.topic.replication.factor"] == "1"


@pytest.mark.broker
def test_the_session_broker_runs_the_jars_of_its_release(kafka_broker):
    # Kafka's AppInfoParser logs the version of the jars it was loaded from.
    assert f"Kafka version: {kafka_broker.version}" in kafka_broker.log_file.read_text(encoding="utf-8")
