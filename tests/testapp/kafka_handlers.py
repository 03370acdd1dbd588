"""
Receivers used by ``consume_events`` subprocesses in the tests.

``TESTAPP_TOPIC`` names the topic to receive, ``TESTAPP_RECORD`` the file that every handled
message is appended to, one line each: ``pid partition offset id``. The message value
(JSON) steers the receiver: ``{"id": 7, "sleep": 0.5, "fail": true}``; with ``"slow_every": 40`` and
``"slow": 0.5``, every 40th id also sleeps half a second.
Lines are written with one ``O_APPEND`` write each, so several processes can share the file.

With ``TESTAPP_WRITE_ROWS=1`` the topic receiver also inserts one ``HandledRow`` per message through
the ORM (a table without a unique constraint, so a message handled twice leaves two rows). With
``TESTAPP_BATCH=1`` a ``batch_signal`` receiver takes its place: it records each message and writes
the batch's rows with one ``bulk_create``.

Two more switches, off unless set to ``1``: ``TESTAPP_RECORD_STARTS`` also records a ``started``
line before the receiver sleeps or fails (so a test knows a message is in hand), and
``TESTAPP_FIXED`` plays a receiver that was fixed: it ignores ``sleep`` and ``fail``.

For retry tests, ``{"id": 7, "fail_times": 2}`` makes the topic receiver fail its first two
tries of that message in this process, and ``TESTAPP_TRIES`` names a second file where every
try of the topic receiver (success or failure) is appended, one line each:
``pid partition offset id ok|failed <time.time() at the start of the try>``.
"""

import os
import time

from django.dispatch import receiver

from kafka_consumer_app.signals import batch_signal, event_signal, topic_signal

TOPIC = os.environ.get("TESTAPP_TOPIC")
EVENT_TYPE = os.environ.get("TESTAPP_EVENT_TYPE")
RECORD = os.environ.get("TESTAPP_RECORD")
RECORD_STARTS = os.environ.get("TESTAPP_RECORD_STARTS") == "1"
FIXED = os.environ.get("TESTAPP_FIXED") == "1"
TRIES = os.environ.get("TESTAPP_TRIES")
WRITE_ROWS = os.environ.get("TESTAPP_WRITE_ROWS") == "1"
BATCH = os.environ.get("TESTAPP_BATCH") == "1"

#: Failed tries per (topic, partition, offset), for ``fail_times``.
_failed_tries = {}


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


def record_try(message, outcome, started):
    """Append one try of the topic receiver to the TESTAPP_TRIES file (when set), in one write."""
    if not TRIES:
        return
    value = message.value if isinstance(message.value, dict) else {}
    line = f"{os.getpid()} {message.partition} {message.offset} {value.get('id')} {outcome} {started!r}\n"
    fd = os.open(TRIES, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def behave(message):
    """Sleep or fail as the message asks (unless TESTAPP_FIXED)."""
    if FIXED:
        return
    value = message.value if isinstance(message.value, dict) else {}
    if value.get("sleep"):
        time.sleep(float(value["sleep"]))
    if value.get("slow_every") and int(value.get("id") or 0) % int(value["slow_every"]) == 0:
        time.sleep(float(value["slow"]))
    if value.get("fail"):
        raise RuntimeError(f"message {value.get('id')} asked to fail")
    if value.get("fail_times"):
        key = (message.topic, message.partition, message.offset)
        failed = _failed_tries.get(key, 0)
        if failed < int(value["fail_times"]):
            _failed_tries[key] = failed + 1
            raise RuntimeError(f"message {value.get('id')} asked to fail {value['fail_times']} time(s)")


if TOPIC and BATCH:

    @receiver(batch_signal(TOPIC))
    def on_topic_batch(sender, messages, **kwargs):
        """Write the batch's rows (with TESTAPP_WRITE_ROWS) in one bulk_create, then record each message."""
        if WRITE_ROWS:
            from tests.testapp.models import HandledRow

            HandledRow.objects.bulk_create(
                [HandledRow(topic=m.topic, partition=m.partition, offset=m.offset) for m in messages]
            )
        for message in messages:
            record(message, "topic")


if TOPIC and not BATCH:

    @receiver(topic_signal(TOPIC))
    def on_topic_message(sender, message, **kwargs):
        """Record, then sleep or fail as asked."""
        if RECORD_STARTS:
            record(message, "started")
        started = time.time()
        try:
            behave(message)
        except Exception:
            record_try(message, "failed", started)
            raise
        record_try(message, "ok", started)
        if WRITE_ROWS:
            from tests.testapp.models import HandledRow

            HandledRow.objects.create(topic=message.topic, partition=message.partition, offset=message.offset)
        record(message, "topic")


if EVENT_TYPE:

    @receiver(event_signal(EVENT_TYPE))
    def on_event(sender, message, **kwargs):
        """Record messages routed by their ce_type header."""
        record(message, "event")
