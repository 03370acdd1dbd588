"""
``OpenEdxEvent.send`` against openedx-events' own ``send_event_with_custom_metadata``, on the same signal and receivers.

No broker: both paths run in this process, one after the other, and every observable is
compared: the responses (or the exception), the receivers called with their keyword arguments
in order, and the lines logged on openedx-events' logger, with that logger at INFO and above it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from opaque_keys.edx.keys import CourseKey
from openedx_events import tooling
from openedx_events.data import EventsMetadata
from openedx_events.exceptions import SenderValidationError
from openedx_events.learning.data import CourseData, UserData, UserPersonalData
from openedx_events.tooling import OpenEdxPublicSignal

from kafka_consumer_app.engine.openedx import OpenEdxEvent
from kafka_consumer_app.engine.openedx_send import TOOLING_LOGGER, send_from_event_bus
from kafka_consumer_app.exceptions import DeserializationError

USER = UserData(id=7, is_active=True, pii=UserPersonalData(username="grace", email="g@example.com", name="Grace"))
COURSE = CourseData(
    course_key=CourseKey.from_string("course-v1:edX+Send+2026"),
    display_name="Sending",
    start=datetime(2026, 9, 1, tzinfo=UTC),
)
DATA = {"user": USER, "course": COURSE}


class Recorder:
    """Receivers that note each call (name and keyword arguments, in order) and answer or raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, Any]]]] = []

    def answering(self, name: str, answer: Any = None) -> Callable[..., Any]:
        def receiver(**kwargs: Any) -> Any:
            self.calls.append((name, list(kwargs.items())))
            return answer

        receiver.__name__ = receiver.__qualname__ = name
        return receiver

    def raising(self, name: str) -> Callable[..., Any]:
        def receiver(**kwargs: Any) -> Any:
            self.calls.append((name, list(kwargs.items())))
            raise ValueError(f"{name} failed")

        receiver.__name__ = receiver.__qualname__ = name
        return receiver

    def awaiting(self, name: str) -> Callable[..., Any]:
        async def receiver(**kwargs: Any) -> Any:
            self.calls.append((name, list(kwargs.items())))
            return f"{name} awaited"

        receiver.__name__ = receiver.__qualname__ = name
        return receiver


@pytest.fixture
def signal() -> Iterator[OpenEdxPublicSignal]:
    """A signal of its own (two data fields), out of openedx-events' registry again afterwards."""
    made = OpenEdxPublicSignal("org.openedx.test.send.equivalence.v1", {"user": UserData, "course": CourseData})
    try:
        yield made
    finally:
        OpenEdxPublicSignal.instances.remove(made)
        del OpenEdxPublicSignal._mapping[made.event_type]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(params=[logging.INFO, logging.WARNING], ids=["info-on", "info-off"])
def tooling_level(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> int:
    """openedx-events' logger at INFO (its line is written) or above (its line is dropped)."""
    level: int = request.param
    caplog.set_level(level, logger=TOOLING_LOGGER.name)
    return level


def metadata(signal: OpenEdxPublicSignal) -> EventsMetadata:
    return EventsMetadata(
        event_type=signal.event_type,
        id=UUID("0b1f5e4c-cf7a-4d2e-9a52-5d7a1c3e8f01"),
        minorversion=0,
        time=datetime(2026, 12, 2, 10, 0, 0, 1, tzinfo=UTC),
        source="openedx/lms/web",
        sourcehost="lms-1",
        sourcelib=(10, 5, 0),
    )


def outcome(
    send: Callable[[], Any], recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> tuple[Any, list[Any], list[tuple[str, int, str]]]:
    """What one send did: its result (exceptions as type and text), the receivers' calls, openedx-events' lines."""
    recorder.calls.clear()
    caplog.clear()
    try:
        result: Any = ("returned", [(receiver, _comparable(response)) for receiver, response in send()])
    except Exception as error:
        result = ("raised", type(error), str(error))
    lines = [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name == TOOLING_LOGGER.name]
    return result, list(recorder.calls), lines


def _comparable(response: Any) -> Any:
    return (type(response), response.args) if isinstance(response, Exception) else response


def both(
    signal: OpenEdxPublicSignal, recorder: Recorder, caplog: pytest.LogCaptureFixture, data: dict[str, Any]
) -> tuple[Any, Any]:
    """openedx-events' send and ours, on the same metadata and data."""
    meta = metadata(signal)
    theirs = outcome(lambda: signal.send_event_with_custom_metadata(meta, **data), recorder, caplog)
    ours = outcome(lambda: send_from_event_bus(signal, meta, data), recorder, caplog)
    return theirs, ours


def connect(signal: OpenEdxPublicSignal, *receivers: Callable[..., Any]) -> None:
    for receiver in receivers:
        signal.connect(receiver, weak=False)


def test_receivers_that_answer_get_the_same_arguments_and_give_the_same_responses(
    signal, recorder, caplog, tooling_level
):
    connect(signal, recorder.answering("first", 1), recorder.awaiting("second"), recorder.answering("third", "x"))
    theirs, ours = both(signal, recorder, caplog, DATA)
    assert ours == theirs
    result, calls, lines = ours
    assert [response for _receiver, response in result[1]] == [1, "x", "second awaited"]
    assert calls[0] == (
        "first",
        [
            ("signal", signal),
            ("sender", None),
            ("user", USER),
            ("course", COURSE),
            ("metadata", metadata(signal)),
            ("from_event_bus", True),
        ],
    )
    assert len(lines) == (1 if tooling_level == logging.INFO else 0)


def test_failing_receivers_give_the_same_exceptions_and_the_same_log_line(signal, recorder, caplog, tooling_level):
    connect(signal, recorder.raising("broken"), recorder.answering("fine", "ok"), recorder.raising("also_broken"))
    theirs, ours = both(signal, recorder, caplog, DATA)
    assert ours == theirs
    assert [receiver for receiver, _response in ours[0][1]] == [r for r, _response in theirs[0][1]]
    assert ours[0][1][0][1] == (ValueError, ("broken failed",))
    if tooling_level == logging.INFO:
        (line,) = ours[2]
        assert line[2].startswith(f"Responses of the Open edX Event <{signal.event_type}>: \n")
        assert "ValueError('broken failed')" in line[2]
    else:
        assert ours[2] == []


@pytest.mark.parametrize("failing", [False, True], ids=["answering", "failing"])
@pytest.mark.parametrize("mode", ["debug", "allow_send_event_failure"])
def test_debug_and_allowed_failures_send_with_send_as_openedx_events_does(
    signal, recorder, caplog, settings, tooling_level, mode, failing
):
    if mode == "debug":
        settings.DEBUG = True
    else:
        signal.allow_send_event_failure()
    connect(signal, recorder.answering("before", 1))
    if failing:
        connect(signal, recorder.raising("broken"))
    connect(signal, recorder.answering("after", 2))
    theirs, ours = both(signal, recorder, caplog, DATA)
    assert ours == theirs
    if failing:
        assert ours[0] == ("raised", ValueError, "broken failed")
        assert [name for name, _kwargs in ours[1]] == ["before", "broken"]
    assert ours[2] == []  # send(), not send_robust(): openedx-events logs nothing


def test_a_disabled_signal_sends_nothing(signal, recorder, caplog, tooling_level):
    connect(signal, recorder.answering("receiver"))
    signal.disable()
    theirs, ours = both(signal, recorder, caplog, DATA)
    assert ours == theirs == (("returned", []), [], [])


def test_a_signal_without_receivers_returns_no_responses(signal, recorder, caplog, tooling_level):
    theirs, ours = both(signal, recorder, caplog, DATA)
    assert ours == theirs
    assert ours[0] == ("returned", [])


INVALID_DATA = {
    "a field missing": {"user": USER},
    "a field too many": {**DATA, "extra": USER},
    "another field, as many": {"user": USER, "courses": COURSE},
    "a field of another type": {"user": USER, "course": USER},
    "a falsy field": {"user": USER, "course": None},
    "no data": {},
}


@pytest.mark.parametrize("data", INVALID_DATA.values(), ids=INVALID_DATA.keys())
def test_data_the_signal_refuses_raises_openedx_events_own_validation_error(
    signal, recorder, caplog, tooling_level, data
):
    connect(signal, recorder.answering("receiver"))
    theirs, ours = both(signal, recorder, caplog, data)
    assert ours == theirs
    assert ours[0][:2] == ("raised", SenderValidationError)
    assert ours[1] == []


def test_with_info_off_the_responses_are_not_formatted_and_with_info_on_they_are(signal, recorder, caplog, monkeypatch):
    formatted: list[Any] = []
    format_responses = tooling.format_responses
    monkeypatch.setattr(tooling, "format_responses", lambda *a, **k: formatted.append(a) or format_responses(*a, **k))
    connect(signal, recorder.raising("broken"))
    caplog.set_level(logging.WARNING, logger=TOOLING_LOGGER.name)
    send_from_event_bus(signal, metadata(signal), DATA)
    assert formatted == []
    signal.send_event_with_custom_metadata(metadata(signal), **DATA)
    assert len(formatted) == 1  # openedx-events formats its dropped line: what this module avoids
    caplog.set_level(logging.INFO, logger=TOOLING_LOGGER.name)
    send_from_event_bus(signal, metadata(signal), DATA)
    assert len(formatted) == 2


def test_a_logger_disabled_outright_counts_as_info_off(signal, recorder, caplog, monkeypatch):
    connect(signal, recorder.raising("broken"))
    caplog.set_level(logging.INFO, logger=TOOLING_LOGGER.name)
    monkeypatch.setattr(TOOLING_LOGGER, "disabled", True)
    theirs, ours = both(signal, recorder, caplog, DATA)
    assert ours == theirs
    assert ours[2] == []


def test_the_private_attributes_read_are_openedx_events_switches(signal):
    """``_allow_events`` and ``_allow_send_event_failure`` are what ``disable()``/``allow_send_event_failure()`` set."""
    assert (signal._allow_events, signal._allow_send_event_failure) == (True, False)
    signal.allow_send_event_failure()
    signal.disable()
    assert (signal._allow_events, signal._allow_send_event_failure) == (False, True)
    signal.enable()
    assert signal._allow_events is True


def test_a_patched_send_is_the_one_called(signal, recorder, caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger=TOOLING_LOGGER.name)
    sent: list[Any] = []
    monkeypatch.setattr(signal, "send_event_with_custom_metadata", lambda meta, **data: sent.append(data) or [])
    assert send_from_event_bus(signal, metadata(signal), DATA) == []
    assert sent == [DATA]


class Unprintable:
    """A receiver's answer that openedx-events' printer cannot print."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_an_answer_that_cannot_be_printed_fails_openedx_events_send_only_when_its_line_is_written(
    signal, recorder, caplog
):
    """The one difference, by design: a line that is not written is not formatted, so its formatting cannot fail."""
    answer = Unprintable()
    connect(signal, recorder.answering("odd", answer))
    caplog.set_level(logging.WARNING, logger=TOOLING_LOGGER.name)
    with pytest.raises(RuntimeError):  # after the receivers ran, with the line dropped anyway
        signal.send_event_with_custom_metadata(metadata(signal), **DATA)
    ((_receiver, response),) = send_from_event_bus(signal, metadata(signal), DATA)
    assert response is answer
    caplog.set_level(logging.INFO, logger=TOOLING_LOGGER.name)
    with pytest.raises(RuntimeError):
        send_from_event_bus(signal, metadata(signal), DATA)


def test_an_open_edx_event_sends_through_the_same_path(signal, recorder, caplog, settings):
    connect(signal, recorder.raising("broken"), recorder.answering("fine", "ok"))
    event = OpenEdxEvent(signal, dict(DATA), metadata(signal))
    (_broken, error), (_fine, answer) = event.send()
    assert (isinstance(error, ValueError), answer) == (True, "ok")
    with pytest.raises(DeserializationError) as raised:
        OpenEdxEvent(signal, {"user": USER}, metadata(signal)).send()
    assert isinstance(raised.value.__cause__, SenderValidationError)
    settings.DEBUG = True
    ((whole, error),) = event.send()
    assert str(error) == "broken failed" and whole.signal is signal
