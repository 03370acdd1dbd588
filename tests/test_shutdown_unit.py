"""StopRequest and GracefulShutdown in this process: real signals, no second-signal exit."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from kafka_consumer_app.engine.shutdown import GracefulShutdown, StopRequest

from .kafka_utils import wait_for


@pytest.fixture
def sentinel_handlers():
    """
    Install recording handlers for SIGTERM and SIGINT for the test, and restore the originals after.

    If GracefulShutdown failed to take over, a signal lands here instead of killing pytest.
    """
    received: list[int] = []

    def sentinel(signum, frame):
        received.append(signum)

    originals = {signum: signal.signal(signum, sentinel) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield sentinel, received
    for signum, handler in originals.items():
        signal.signal(signum, handler)


def test_stop_request_is_not_set_when_created():
    assert not StopRequest().is_set()


def test_stop_request_is_set_after_set():
    stop = StopRequest()
    stop.set("test")
    assert stop.is_set()


def test_stop_request_keeps_the_reason_given():
    stop = StopRequest()
    stop.set("SIGTERM")
    assert stop.reason == "SIGTERM"


def test_stop_request_keeps_the_first_reason_when_set_twice():
    stop = StopRequest()
    stop.set("SIGTERM")
    stop.set("SIGINT")
    assert stop.reason == "SIGTERM"


def test_stop_request_set_in_another_thread_is_seen_by_this_one():
    stop = StopRequest()
    thread = threading.Thread(target=stop.set, args=("worker",))
    thread.start()
    thread.join(timeout=5)
    assert stop.is_set()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_inside_graceful_shutdown_sets_the_stop_request(sentinel_handlers, signum):
    stop = StopRequest()
    with GracefulShutdown(stop):
        os.kill(os.getpid(), signum)
        wait_for(lambda: stop.is_set() or sentinel_handlers[1], timeout=5, what="the signal to be handled")
    assert stop.is_set()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_inside_graceful_shutdown_records_the_signal_name_as_reason(sentinel_handlers, signum):
    stop = StopRequest()
    with GracefulShutdown(stop):
        os.kill(os.getpid(), signum)
        wait_for(lambda: stop.is_set() or sentinel_handlers[1], timeout=5, what="the signal to be handled")
    assert stop.reason == signal.Signals(signum).name


def test_a_signal_inside_graceful_shutdown_does_not_reach_the_previous_handler(sentinel_handlers):
    _, received = sentinel_handlers
    stop = StopRequest()
    with GracefulShutdown(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(lambda: stop.is_set() or received, timeout=5, what="the signal to be handled")
    assert received == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_restores_the_previous_handler_on_exit(sentinel_handlers, signum):
    sentinel, _ = sentinel_handlers
    with GracefulShutdown(StopRequest()):
        pass
    assert signal.getsignal(signum) is sentinel


def test_graceful_shutdown_restores_the_previous_handler_when_the_block_raises(sentinel_handlers):
    sentinel, _ = sentinel_handlers
    with pytest.raises(RuntimeError), GracefulShutdown(StopRequest()):
        raise RuntimeError("consumer crashed")
    assert signal.getsignal(signal.SIGTERM) is sentinel


def test_a_signal_after_graceful_shutdown_exits_reaches_the_previous_handler(sentinel_handlers):
    _, received = sentinel_handlers
    stop = StopRequest()
    with GracefulShutdown(stop):
        pass
    os.kill(os.getpid(), signal.SIGTERM)
    wait_for(lambda: received or stop.is_set(), timeout=5, what="SIGTERM to be handled")
    assert received == [signal.SIGTERM]


def test_graceful_shutdown_installs_its_handler_while_active(sentinel_handlers):
    sentinel, _ = sentinel_handlers
    with GracefulShutdown(StopRequest()):
        assert signal.getsignal(signal.SIGTERM) is not sentinel


def test_graceful_shutdown_outside_the_main_thread_leaves_handlers_alone(sentinel_handlers):
    sentinel, _ = sentinel_handlers
    seen: list = []

    def enter_in_thread():
        with GracefulShutdown(StopRequest()):
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=enter_in_thread)
    thread.start()
    thread.join(timeout=5)
    assert seen == [sentinel]
