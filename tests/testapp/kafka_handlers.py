"""
Receivers used by ``consume_events`` subprocesses in the tests.

``TESTAPP_TOPIC`` names the topic to receive, ``TESTAPP_RECORD`` the file that every handled
message is appended to, one line each: ``pid partition offset id``. The message value
(JSON) steers the receiver: ``{"id": 7, "sleep": 0.5, "fail": true}``.
Lines are written with one ``O_APPEND`` write each, so several processes can share the file.
"""

import os
import time

from django.dispatch import receiver

from kafka_consumer_app.signals import event_signal, topic_signal

TOPIC = os.environ.get("TESTAPP_TOPIC")
EVENT_TYPE = os.environ.get("TESTAPP_EVENT_TYPE")
RECORD = os.environ.get("TESTAPP_RECORD")


def record(message, kind):
    """Append one line for ``message`` to the record file."""
    if not RECORD:
        return
    value = message.value if isinstance(message.value, dict) else {}
    line = f"{os.getpid()} {message.partition} {message.offset} {value.get('id')} {kind}\n"
    fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def behave(message):
    """Sleep or fail as the message asks."""
    value = message.value if isinstance(message.value, dict) else {}
    if value.get("sleep"):
        time.sleep(float(value["sleep"]))
    if value.get("fail"):
        raise RuntimeError(f"message {value.get('id')} asked to fail")


if TOPIC:

    @receiver(topic_signal(TOPIC))
    def on_topic_message(sender, message, **kwargs):
        """Record, then sleep or fail as asked."""
        behave(message)
        record(message, "topic")


if EVENT_TYPE:

    @receiver(event_signal(EVENT_TYPE))
    def on_event(sender, message, **kwargs):
        """Record messages routed by their ce_type header."""
        record(message, "event")
