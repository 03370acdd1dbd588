"""The signal registries and the Dispatcher that sends one message to its receivers (no broker)."""

from __future__ import annotations

import asyncio
import gc
import uuid
import weakref

import pytest

from kafka_consumer_app.engine.consumer import EventConsumer
from kafka_consumer_app.engine.dispatch import Dispatcher
from kafka_consumer_app.message import Message
from kafka_consumer_app.settings.topics import TopicConfig
from kafka_consumer_app.signals import event_signal, topic_signal


def unique(prefix: str) -> str:
    """A signal name no other test uses: the registries are process-wide."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_message(topic: str, event_type: str | None = None, value: object = None) -> Message:
    headers = (("ce_type", event_type.encode()),) if event_type else ()
    return Message(
        topic=topic,
        partition=0,
        offset=7,
        key="k",
        value=value if value is not None else {"n": 1},
        headers=headers,
        timestamp=None,
        event_type=event_type,
    )


@pytest.fixture
def connect():
    """Connect receivers strongly for one test and disconnect them afterwards."""
    connected = []

    def do_connect(signal, receiver):
        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
        return receiver

    yield do_connect
    for signal, receiver in connected:
        signal.disconnect(receiver)


def recorder(calls: list, name: str, fail: bool = False):
    """A receiver that appends ``(name, kwargs)`` to ``calls`` and raises when ``fail``."""

    def receiver(**kwargs):
        calls.append((name, kwargs))
        if fail:
            raise RuntimeError(f"{name} failed")

    receiver.__qualname__ = f"receiver_{name}"
    return receiver


# -- the registries ------------------------------------------------------------------------


def test_topic_signal_returns_the_same_signal_for_the_same_name():
    name = unique("topic")
    assert topic_signal(name) is topic_signal(name)


def test_event_signal_returns_the_same_signal_for_the_same_name():
    name = unique("event")
    assert event_signal(name) is event_signal(name)


def test_topic_signal_returns_different_signals_for_different_names():
    assert topic_signal(unique("topic")) is not topic_signal(unique("topic"))


def test_event_signal_returns_different_signals_for_different_names():
    assert event_signal(unique("event")) is not event_signal(unique("event"))


def test_topic_and_event_registries_are_separate_for_the_same_name():
    name = unique("shared")
    assert topic_signal(name) is not event_signal(name)


@pytest.mark.parametrize("bad", ["", None, 42, b"user-events"], ids=["empty", "none", "int", "bytes"])
def test_topic_signal_with_a_name_that_is_not_a_non_empty_string_raises_type_error(bad):
    with pytest.raises(TypeError, match="topic signal name must be a non-empty string"):
        topic_signal(bad)


@pytest.mark.parametrize("bad", ["", None, 42, b"a.b.c.v1"], ids=["empty", "none", "int", "bytes"])
def test_event_signal_with_a_name_that_is_not_a_non_empty_string_raises_type_error(bad):
    with pytest.raises(TypeError, match="event signal name must be a non-empty string"):
        event_signal(bad)


# -- routing -------------------------------------------------------------------------------


def test_dispatch_calls_the_receivers_of_the_message_topic(connect):
    topic = unique("topic")
    calls: list = []
    connect(topic_signal(topic), recorder(calls, "mine"))

    Dispatcher(topic, sender=EventConsumer).dispatch(make_message(topic))

    assert [name for name, _ in calls] == ["mine"]


def test_dispatch_does_not_call_the_receivers_of_another_topic(connect):
    topic = unique("topic")
    calls: list = []
    connect(topic_signal(unique("other-topic")), recorder(calls, "other"))

    Dispatcher(topic, sender=EventConsumer).dispatch(make_message(topic))

    assert calls == []


def test_dispatch_calls_the_receivers_of_the_message_event_type(connect):
    topic, event_type = unique("topic"), unique("event")
    calls: list = []
    connect(event_signal(event_type), recorder(calls, "event"))

    Dispatcher(topic, sender=EventConsumer).dispatch(make_message(topic, event_type=event_type))

    assert [name for name, _ in calls] == ["event"]


def test_dispatch_does_not_call_the_receivers_of_another_event_type(connect):
    topic = unique("topic")
    calls: list = []
    connect(event_signal(unique("other-event")), recorder(calls, "other"))

    Dispatcher(topic, sender=EventConsumer).dispatch(make_message(topic, event_type=unique("event")))

    assert calls == []


def test_dispatch_calls_no_event_receiver_for_a_message_without_event_type(connect):
    topic, event_type = unique("topic"), unique("event")
    calls: list = []
    connect(event_signal(event_type), recorder(calls, "event"))

    Dispatcher(topic, sender=EventConsumer).dispatch(make_message(topic, event_type=None))

    assert calls == []


def test_dispatch_sends_the_topic_signal_before_the_event_signal(connect):
    topic, event_type = unique("topic"), unique("event")
    calls: list = []
    connect(event_signal(event_type), recorder(calls, "event"))
    connect(topic_signal(topic), recorder(calls, "topic"))

    Dispatcher(topic, sender=EventConsumer).dispatch(make_message(topic, event_type=event_type))

    assert [name for name, _ in calls] == ["topic", "event"]


def test_dispatch_counts_every_receiver_called(connect):
    topic, event_type = unique("topic"), unique("event")
    calls: list = []
    connect(topic_signal(topic), recorder(calls, "a"))
    connect(topic_signal(topic), recorder(calls, "b"))
    connect(event_signal(event_type), recorder(calls, "c"))

    result = Dispatcher(topic, sender=EventConsumer).dispatch(make_message(topic, event_type=event_type))

    assert result.called == 3


# -- failures ------------------------------------------------------------------------------


def test_a_raising_receiver_does_not_stop_the_other_receivers(connect):
    topic, event_type = unique("topic"), unique("event")
    calls: list = []
    connect(topic_signal(topic), recorder(calls, "first", fail=True))
    connect(topic_signal(topic), recorder(calls, "second"))
    connect(event_signal(event_type), recorder(calls, "event"))

    Dispatcher(topic, sender=EventConsumer).dispatch(make_message(topic, event_type=event_type))

    assert [name for name, _ in calls] == ["first", "second", "event"]


def test_dispatch_reports_the_raising_receiver_and_its_exception_as_a_failure(connect):
    topic = unique("topic")
    failing = connect(topic_signal(topic), recorder([], "bad", fail=True))
    connect(topic_signal(topic), recorder([], "good"))

    result = Dispatcher(topic, sender=EventConsumer).dispatch(make_message(topic))

    assert [(f.receiver, type(f.error), str(f.error)) for f in result.failures] == [
        (failing, RuntimeError, "bad failed")
    ]


def test_dispatch_result_is_not_ok_when_a_receiver_raised(connect):
    topic = unique("topic")
    connect(topic_signal(topic), recorder([], "bad", fail=True))

    result = Dispatcher(topic, sender=EventConsumer).dispatch(make_message(topic))

    assert not result.ok


def test_dispatch_result_is_ok_when_every_receiver_returned(connect):
    topic = unique("topic")
    connect(topic_signal(topic), recorder([], "good"))

    result = Dispatcher(topic, sender=EventConsumer).dispatch(make_message(topic))

    assert result.ok


def test_a_failure_records_the_signal_its_receiver_was_connected_to(connect):
    topic, event_type = unique("topic"), unique("event")
    connect(event_signal(event_type), recorder([], "bad", fail=True))

    result = Dispatcher(topic, sender=EventConsumer).dispatch(make_message(topic, event_type=event_type))

    assert [f.signal for f in result.failures] == [event_signal(event_type)]


def test_a_failure_names_its_receiver_by_module_and_qualified_name(connect):
    topic = unique("topic")
    connect(topic_signal(topic), recorder([], "bad", fail=True))

    result = Dispatcher(topic, sender=EventConsumer).dispatch(make_message(topic))

    assert [f.receiver_name for f in result.failures] == [f"{__name__}.receiver_bad"]


def test_redispatch_calls_only_the_receivers_that_failed(connect):
    topic, event_type = unique("topic"), unique("event")
    calls: list = []
    connect(topic_signal(topic), recorder(calls, "good"))
    connect(topic_signal(topic), recorder(calls, "bad", fail=True))
    connect(event_signal(event_type), recorder(calls, "event-good"))
    dispatcher = Dispatcher(topic, sender=EventConsumer)
    message = make_message(topic, event_type=event_type)
    first = dispatcher.dispatch(message)
    calls.clear()

    dispatcher.redispatch(message, first.failures)

    assert [name for name, _ in calls] == ["bad"]


def test_redispatch_reports_a_receiver_that_fails_again(connect):
    topic = unique("topic")
    failing = connect(topic_signal(topic), recorder([], "bad", fail=True))
    dispatcher = Dispatcher(topic, sender=EventConsumer)
    message = make_message(topic)

    again = dispatcher.redispatch(message, dispatcher.dispatch(message).failures)

    assert [(f.receiver, str(f.error)) for f in again.failures] == [(failing, "bad failed")]


def test_redispatch_is_ok_once_the_failed_receiver_succeeds(connect):
    topic = unique("topic")
    attempts: list = []

    def flaky(**kwargs):
        attempts.append(kwargs)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")

    connect(topic_signal(topic), flaky)
    dispatcher = Dispatcher(topic, sender=EventConsumer)
    message = make_message(topic)

    again = dispatcher.redispatch(message, dispatcher.dispatch(message).failures)

    assert again.ok


def test_redispatch_passes_the_original_signal_sender_and_message(connect):
    topic, event_type = unique("topic"), unique("event")
    calls: list = []
    connect(event_signal(event_type), recorder(calls, "bad", fail=True))
    dispatcher = Dispatcher(topic, sender=EventConsumer)
    message = make_message(topic, event_type=event_type)
    first = dispatcher.dispatch(message)
    calls.clear()

    dispatcher.redispatch(message, first.failures)

    assert calls == [("bad", {"signal": event_signal(event_type), "sender": EventConsumer, "message": message})]


# -- what receivers get --------------------------------------------------------------------


def test_receivers_of_an_event_consumer_get_the_event_consumer_class_signal_and_message(connect):
    topic = unique("topic")
    calls: list = []
    connect(topic_signal(topic), recorder(calls, "mine"))
    consumer = EventConsumer(TopicConfig(topic=topic, kafka_topic=topic, group_id="g", bootstrap_servers="127.0.0.1:1"))
    message = make_message(topic)

    consumer.dispatcher.dispatch(message)

    assert calls == [("mine", {"sender": EventConsumer, "signal": topic_signal(topic), "message": message})]


def test_has_receivers_is_false_when_nothing_is_connected_for_the_topic():
    assert not Dispatcher(unique("topic"), sender=EventConsumer).has_receivers()


def test_has_receivers_is_true_with_a_topic_receiver(connect):
    topic = unique("topic")
    connect(topic_signal(topic), recorder([], "mine"))

    assert Dispatcher(topic, sender=EventConsumer).has_receivers()


def test_has_receivers_is_true_with_an_event_receiver_since_events_arrive_on_any_topic(connect):
    connect(event_signal(unique("event")), recorder([], "event"))

    assert Dispatcher(unique("topic"), sender=EventConsumer).has_receivers()


def test_has_receivers_ignores_a_receiver_connected_for_another_sender():
    topic = unique("topic")
    other_sender = type("OtherSender", (), {})
    receiver = recorder([], "other-sender")
    topic_signal(topic).connect(receiver, sender=other_sender, weak=False)
    try:
        assert not Dispatcher(topic, sender=EventConsumer).has_receivers()
    finally:
        topic_signal(topic).disconnect(receiver, sender=other_sender)


# -- the dispatcher's cache of receivers ----------------------------------------------------


def test_a_receiver_connected_after_the_first_dispatch_gets_the_next_message(connect):
    topic, event_type = unique("topic"), unique("event")
    calls: list = []
    dispatcher = Dispatcher(topic, sender=EventConsumer)
    dispatcher.dispatch(make_message(topic, event_type=event_type))
    connect(topic_signal(topic), recorder(calls, "topic"))
    connect(event_signal(event_type), recorder(calls, "event"))

    dispatcher.dispatch(make_message(topic, event_type=event_type))

    assert [name for name, _ in calls] == ["topic", "event"]


def test_a_receiver_disconnected_after_a_dispatch_gets_no_more_messages():
    topic = unique("topic")
    calls: list = []
    receiver = recorder(calls, "gone")
    topic_signal(topic).connect(receiver, weak=False)
    dispatcher = Dispatcher(topic, sender=EventConsumer)
    dispatcher.dispatch(make_message(topic))
    topic_signal(topic).disconnect(receiver)

    dispatcher.dispatch(make_message(topic))

    assert len(calls) == 1


def test_the_dispatcher_keeps_no_weakly_connected_receiver_alive():
    topic = unique("topic")
    calls: list = []
    receiver = recorder(calls, "weak")
    topic_signal(topic).connect(receiver)  # weak, Django's default
    dispatcher = Dispatcher(topic, sender=EventConsumer)
    dispatcher.dispatch(make_message(topic))
    reference = weakref.ref(receiver)
    del receiver
    gc.collect()

    dispatcher.dispatch(make_message(topic))

    assert reference() is None, "the dispatcher's cache kept a weakly connected receiver alive"
    assert len(calls) == 1


def test_a_bound_method_receiver_is_called_while_its_object_lives(connect):
    topic = unique("topic")
    calls: list = []

    class Handler:
        def on_message(self, **kwargs):
            calls.append(kwargs["message"].offset)

    handler = Handler()
    topic_signal(topic).connect(handler.on_message)
    dispatcher = Dispatcher(topic, sender=EventConsumer)
    dispatcher.dispatch(make_message(topic))
    del handler
    gc.collect()
    dispatcher.dispatch(make_message(topic))

    assert calls == [7]


def test_an_async_receiver_runs_to_completion(connect):
    topic = unique("topic")
    calls: list = []

    async def receiver(**kwargs):
        await asyncio.sleep(0)
        calls.append(kwargs["message"].offset)

    connect(topic_signal(topic), receiver)

    result = Dispatcher(topic, sender=EventConsumer).dispatch(make_message(topic))

    assert calls == [7] and result.ok


def test_an_untimed_dispatch_counts_and_reports_failures_but_records_no_calls(connect):
    topic = unique("topic")
    connect(topic_signal(topic), recorder([], "bad", fail=True))
    connect(topic_signal(topic), recorder([], "good"))

    result = Dispatcher(topic, sender=EventConsumer, timed=False).dispatch(make_message(topic))

    assert (result.called, result.calls) == (2, [])
    assert [str(failure.error) for failure in result.failures] == ["bad failed"]
