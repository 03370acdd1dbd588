"""Repeated librdkafka lines are thinned out, never silently dropped."""

from __future__ import annotations

import logging
import time

from kafka_consumer_app.observers.logs import RepeatFilter


def record(message: str) -> logging.LogRecord:
    """A log record as librdkafka's logger would make it."""
    return logging.LogRecord("kafka_consumer_app.librdkafka", logging.ERROR, __file__, 1, message, None, None)


def test_lines_differing_only_in_numbers_pass_once_per_window_and_the_next_says_how_many_were_held():
    repeat = RepeatFilter(window=0.2)
    first = [
        repeat.filter(record(f"Connect to 127.0.0.1:{port} failed after {port % 7}ms")) for port in range(9000, 9005)
    ]

    assert first == [True, False, False, False, False]
    later = record("Connect to 127.0.0.1:9100 failed after 3ms")
    time.sleep(0.25)  # the window is the behaviour under test: it must have passed
    assert repeat.filter(later) and "(4 similar line(s) held back" in later.getMessage()


def test_different_lines_are_not_held_back():
    repeat = RepeatFilter(window=60)

    assert repeat.filter(record("Connect failed")) and repeat.filter(record("Authentication failed"))
