"""The hook error contract: a hook that raises is logged and ignored, except at before_start, where it is fatal."""

from __future__ import annotations

import logging
from contextlib import nullcontext

import pytest
from confluent_kafka import Producer

from kafka_consumer_app.engine.consumer import EventConsumer, RunOptions
from kafka_consumer_app.engine.hooks import HANDLED, ConsumerHooks, ConsumerView, HookEmitter
from kafka_consumer_app.exceptions import ConfigurationError
from kafka_consumer_app.settings.topics import TopicConfig, get_topic_config
from kafka_consumer_app.signals import topic_signal

from .kafka_utils import committed

CONFIG = TopicConfig(topic="orders", kafka_topic="orders", group_id="g", bootstrap_servers="127.0.0.1:1")


class View:
    config = CONFIG


class RaisingAfterMessage(ConsumerHooks):
    def __init__(self) -> None:
        self.calls = 0

    def after_message(self, consumer: ConsumerView, raw: object, outcome: str) -> None:
        self.calls += 1
        raise RuntimeError("metrics backend gone")


class RecordingAfterMessage(ConsumerHooks):
    def __init__(self) -> None:
        self.outcomes: list[str] = []

    def after_message(self, consumer: ConsumerView, raw: object, outcome: str) -> None:
        self.outcomes.append(outcome)


class FailingStart(ConsumerHooks):
    def before_start(self, consumer: ConsumerView) -> None:
        raise ConfigurationError("health port 8000 is in use")


def test_a_raising_after_message_hook_is_logged_with_its_name_and_ignored_and_the_next_hooks_run(caplog):
    raising, recording = RaisingAfterMessage(), RecordingAfterMessage()
    emitter = HookEmitter([raising, recording], View())

    with caplog.at_level(logging.ERROR, logger="kafka_consumer_app.engine.hooks"):
        emitter.emit("after_message", object(), HANDLED)

    assert raising.calls == 1 and recording.outcomes == [HANDLED]
    [record] = caplog.records
    assert "RaisingAfterMessage.after_message" in record.getMessage()
    assert "orders (group g)" in record.getMessage() and "ignored" in record.getMessage()
    assert record.exc_info is not None and "metrics backend gone" in str(record.exc_info[1])


def test_a_before_start_hook_error_is_fatal():
    emitter = HookEmitter([FailingStart()], View())
    with pytest.raises(ConfigurationError, match="health port 8000 is in use"):
        emitter.emit("before_start")


def test_a_before_start_hook_error_stops_run_before_subscribing():
    consumer = EventConsumer(CONFIG, RunOptions(allow_no_handlers=True), hooks=[FailingStart()])
    with pytest.raises(ConfigurationError, match="health port 8000 is in use"):
        consumer.run()
    assert consumer.summary.processed == 0


def test_hook_points_nobody_implements_are_not_wanted():
    emitter = HookEmitter([RecordingAfterMessage()], View())
    assert emitter.wants("after_message")
    assert not emitter.wants("before_message")


@pytest.mark.broker
@pytest.mark.django_db
def test_a_raising_after_message_hook_does_not_stop_the_message_being_handled_and_committed(
    kafka_settings, make_topic, group_id, caplog
):
    topic = make_topic()
    servers = kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"]
    producer = Producer({"bootstrap.servers": servers})
    for index in range(3):
        producer.produce(topic, f'{{"n": {index}}}'.encode(), partition=0)
    assert producer.flush(30) == 0
    got: list[int] = []

    def receiver(sender, message, **kwargs):
        got.append(message.offset)

    raising = RaisingAfterMessage()
    topic_signal(topic).connect(receiver, weak=False)
    try:
        consumer = EventConsumer(get_topic_config(topic), RunOptions(max_messages=3), hooks=[raising])
        summary = consumer.run()
    finally:
        topic_signal(topic).disconnect(receiver)

    assert got == [0, 1, 2]
    assert summary.handled == 3 and raising.calls == 3
    assert committed(servers, group_id, topic, 1) == {0: 3}
    assert caplog.text.count("RaisingAfterMessage.after_message") == 3


class MessageContext(ConsumerHooks):
    def __init__(self) -> None:
        self.entered: list[object] = []

    def dispatching(self, consumer: ConsumerView, message: object) -> nullcontext[None]:
        self.entered.append(message)
        return nullcontext()


class BatchContext(ConsumerHooks):
    def __init__(self) -> None:
        self.entered: list[object] = []

    def dispatching_batch(self, consumer: ConsumerView, messages: object) -> nullcontext[None]:
        self.entered.append(messages)
        return nullcontext()


def test_a_batch_runs_in_each_hooks_batch_context_which_defaults_to_its_first_messages_context():
    per_message, per_batch = MessageContext(), BatchContext()
    emitter = HookEmitter([per_message, per_batch, RecordingAfterMessage()], View())
    batch = ["first", "second"]

    with emitter.dispatching_batch(batch):
        pass

    assert (per_message.entered, per_batch.entered) == (["first"], [batch])
    assert "dispatching_batch" in emitter.wanted
    assert "dispatching_batch" not in HookEmitter([RecordingAfterMessage()], View()).wanted
