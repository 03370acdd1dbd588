"""The commits on shutdown and on revoke when the group is rebalancing, against a stand-in client."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from kafka_consumer_app.engine import commits as commits_module
from kafka_consumer_app.engine.consumer import EventConsumer, RunOptions
from kafka_consumer_app.settings.topics import get_topic_config


class StandInClient:
    """Answers commit() with the given errors in turn (None: success); records pauses, polls and stores."""

    def __init__(self, *commit_errors: int | None) -> None:
        self.commit_errors = list(commit_errors)
        self.commits = 0
        self.paused: list[TopicPartition] = []
        self.polls = 0
        self.stored = 0

    def commit(self, asynchronous: bool = True) -> None:
        self.commits += 1
        code = self.commit_errors.pop(0) if self.commit_errors else None
        if code is not None:
            raise KafkaException(KafkaError(code))

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("orders", 0), TopicPartition("orders", 1)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.extend(partitions)

    def poll(self, timeout: float) -> object:
        self.polls += 1
        return object()  # a fetched message: must be neither handled nor stored

    def store_offsets(self, **kwargs: object) -> None:
        self.stored += 1


@pytest.fixture
def event_consumer(monkeypatch) -> EventConsumer:
    monkeypatch.setattr(commits_module, "COMMIT_RETRY_INTERVAL", 0.001)
    return EventConsumer(get_topic_config("orders"), RunOptions(allow_no_handlers=True))


def test_a_shutdown_commit_refused_by_a_rebalance_is_made_again_after_polling_without_storing_anything(
    event_consumer, caplog
):
    client = StandInClient(KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS, None)
    with caplog.at_level(logging.INFO, logger="kafka_consumer_app.engine.commits"):
        assert event_consumer.commits.commit_on_shutdown(client) is True
    assert client.commits == 3
    assert {p.partition for p in client.paused} == {0, 1}
    assert client.polls == 2 and client.stored == 0
    assert "once the rebalance settled" in caplog.text


def test_a_shutdown_commit_failing_for_another_reason_is_not_retried_and_is_logged_as_failed(event_consumer, caplog):
    client = StandInClient(KafkaError._TRANSPORT)
    assert event_consumer.commits.commit_on_shutdown(client) is False
    assert client.commits == 1 and client.polls == 0
    assert "on shutdown failed" in caplog.text


def test_the_revoke_line_says_the_commit_failed_when_it_did(event_consumer, caplog):
    event_consumer.rebalance.on_revoke(StandInClient(KafkaError._TRANSPORT), [TopicPartition("orders", 1)])
    assert "committing handled offsets failed" in caplog.text
    assert "after committing" not in caplog.text


def test_a_revoke_commit_refused_by_a_rebalance_is_tried_again_within_the_callback(event_consumer, caplog):
    client = StandInClient(KafkaError.REBALANCE_IN_PROGRESS, None)
    with caplog.at_level(logging.INFO, logger="kafka_consumer_app.engine.rebalance"):
        event_consumer.rebalance.on_revoke(client, [TopicPartition("orders", 1)])
    assert client.commits == 2
    assert "after committing handled offsets" in caplog.text


def test_commit_returns_whether_it_succeeded_and_nothing_stored_counts_as_success(event_consumer):
    assert event_consumer.commits.commit(StandInClient(None), "test") is True
    assert event_consumer.commits.commit(StandInClient(KafkaError._NO_OFFSET), "test") is True
    assert event_consumer.commits.commit(StandInClient(KafkaError.ILLEGAL_GENERATION), "test") is False


# -- KIP-848's consumer protocol: a commit of a member epoch the broker has just bumped -----------


def test_a_revoke_commit_refused_for_a_stale_member_epoch_is_tried_again_within_the_callback(event_consumer, caplog):
    # Under group.protocol "consumer" the broker bumps the member epoch as it reconciles an assignment, and
    # refuses a commit of the old one until the next heartbeat: the revoked partitions' commit must be retried.
    client = StandInClient(KafkaError.STALE_MEMBER_EPOCH, None)
    with caplog.at_level(logging.INFO, logger="kafka_consumer_app.engine.rebalance"):
        event_consumer.rebalance.on_revoke(client, [TopicPartition("orders", 1)])
    assert client.commits == 2
    assert "after committing handled offsets" in caplog.text


def test_a_shutdown_commit_refused_for_a_stale_member_epoch_is_made_again_after_polling(event_consumer):
    client = StandInClient(KafkaError.STALE_MEMBER_EPOCH, None)
    assert event_consumer.commits.commit_on_shutdown(client) is True
    assert client.commits == 2 and client.polls == 1 and client.stored == 0


def test_a_commit_of_a_fenced_member_epoch_is_not_retried(event_consumer):
    # A fenced member has lost its partitions: no retry can commit for them.
    client = StandInClient(KafkaError.FENCED_MEMBER_EPOCH, None)
    assert event_consumer.commits.commit_on_shutdown(client) is False
    assert client.commits == 1 and client.polls == 0
