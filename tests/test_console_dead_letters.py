"""
The operator console's Dead letters pages: the list, the detail, Replay and Resolve, permissions and audit.

Messages are parked by a real ``consume_events`` run whose receiver fails, on the real broker; the
pages are driven with Django's test client. Replay is checked by counting the messages of the
original topic and by letting a fixed consumer handle the copies.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from kafka_consumer_app.admin import dead_letters as page_module
from kafka_consumer_app.models import DeadLetterMark
from kafka_consumer_app.redaction import masked_payload

from .kafka_utils import produce, read_records, report_figures
from .test_console import user

pytestmark = pytest.mark.django_db

LIST = "admin:kafka_consumer_app_deadlettermark_changelist"
REPLAY = "admin:kafka_consumer_app_dead_letters_replay"
RESOLVE = "admin:kafka_consumer_app_dead_letters_resolve"
RECEIVER = "tests.testapp.kafka_handlers.on_topic_message"
#: Many keys, so that even the masked payload is longer than the preview limit.
PERSONAL = {f"field{i}": "alice@example.com" for i in range(150)}


@dataclass(frozen=True)
class Parked:
    """A configured topic whose consumer parked ids 1, 2 and 4 (receiver failed) and offset 3 (malformed)."""

    topic: str
    dlq: str
    servers: str
    record: Path


def end_offset(servers: str, topic: str) -> int:
    """The end offset of partition 0 of ``topic``."""
    consumer = Consumer({"bootstrap.servers": servers, "group.id": f"ends-{uuid.uuid4().hex}"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        consumer.close()


@pytest.fixture
def parked(kafka_settings, kafka_broker, make_topic, group_id, tmp_path, consumers) -> Parked:
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=1)
    dlq = f"{topic}-dlt"
    kafka_broker.create_topic(dlq)
    kafka_settings.KAFKA_CONSUMER = {
        **kafka_settings.KAFKA_CONSUMER,
        "FAILURE_POLICY": "dead-letter",
        "TOPICS": {topic: {}},
    }
    produce(servers, topic, [{"id": 0}, {"id": 1, "fail": True, **PERSONAL}, {"id": 2, "fail": True}])
    produce(servers, topic, [b"not json"], raw=True)
    produce(servers, topic, [{"id": 4, "fail": True}, {"id": 5}])
    record = tmp_path / "records.txt"
    env = {"KAFKA_FAILURE_POLICY": "dead-letter", "KAFKA_RETRY_ATTEMPTS": "1"}
    started = time.monotonic()
    parking = consumers.start(servers, topic, record, "--idle-timeout", "3", group=group_id, env=env)
    assert parking.wait(60) == 0, parking.output()
    report_figures(f"FIGURES console-park: parked=4 seconds={time.monotonic() - started:.1f}")
    assert end_offset(servers, dlq) == 4
    return Parked(topic, dlq, servers, record)


def rows(body: str) -> list[str]:
    """The ``partition-offset`` ids of the list's rows, in page order."""
    return [part.split('"')[0] for part in body.split('id="dead-letter-')[1:] if part[0].isdigit()]


@pytest.mark.broker
def test_the_list_pages_newest_first_filters_and_the_detail_masks_the_payload_without_its_permission(
    parked, monkeypatch
):
    monkeypatch.setattr(page_module, "PAGE_SIZE", 3)
    viewer = user("viewer", "view_deadlettermark")
    reader = user("reader", "view_deadlettermark", "view_dead_letter_payload")

    def page(**query) -> str:
        return viewer.get(reverse(LIST), {"dlq": parked.dlq, **query}).content.decode()

    first, second = page(), page(page=2)
    assert rows(first) == ["0-3", "0-2", "0-1"] and rows(second) == ["0-0"]
    assert 'class="next-page"' in first and 'id="matching-count">4<' in first and "replay-button" not in first
    assert rows(page(reason="malformed")) == ["0-2"]
    assert rows(page(receiver="on_topic_message")) == ["0-3", "0-1", "0-0"]
    assert rows(page(original_topic="elsewhere")) == [] and rows(page(since="2999-01-01T00:00")) == []
    assert rows(page(until="2000-01-01T00:00")) == [] and "filter-problem" in page(since="yesterday")

    detail = reverse("admin:kafka_consumer_app_dead_letter", args=[parked.dlq, 0, 0])
    masked, whole = viewer.get(detail).content.decode(), reader.get(detail).content.decode()
    assert "alice@example.com" not in masked and "&quot;field0&quot;: &quot;***&quot;" in masked
    assert 'id="payload-cut"' in masked and "payload-masked" in masked
    assert whole.count("alice@example.com") == len(PERSONAL) and "payload-whole" in whole
    assert RECEIVER in masked and "receiver-failed" in masked and "dlt.original.offset" in masked


@pytest.mark.broker
def test_replay_republishes_once_even_when_posted_twice_and_a_fixed_consumer_handles_each_copy_once(
    parked, consumers, group_id
):
    operator = user("operator", "view_deadlettermark", "replay_dead_letters")
    chosen = {"dlq": parked.dlq, "selected": ["0:0", "0:3"]}

    first, again = operator.post(reverse(REPLAY), chosen), operator.post(reverse(REPLAY), chosen)

    assert first.status_code == again.status_code == 302
    assert end_offset(parked.servers, parked.topic) == 6 + 2, "the second POST replayed again"
    assert set(DeadLetterMark.objects.values_list("offset", "state", "changed_by")) == {
        (0, "replayed", "operator"),
        (3, "replayed", "operator"),
    }
    log = [entry.get_change_message() for entry in LogEntry.objects.order_by("action_time")]
    assert log[0].startswith(f"Replayed 2 dead letter(s) of {parked.dlq}; 0 were")
    assert log[1].startswith(f"Replayed 0 dead letter(s) of {parked.dlq}; 2 were")
    listed = operator.get(reverse(LIST), {"dlq": parked.dlq}).content.decode()
    assert listed.count('class="state-replayed"') == 2

    env = {"KAFKA_FAILURE_POLICY": "dead-letter", "TESTAPP_FIXED": "1"}
    fixed = consumers.start(parked.servers, parked.topic, parked.record, "--idle-timeout", "3", group=group_id, env=env)
    assert fixed.wait(60) == 0, fixed.output()
    copies = [(r.offset, r.id) for r in read_records(parked.record) if r.kind == "topic" and r.pid == fixed.pid]
    assert copies == [(6, 1), (7, 4)]


@pytest.mark.broker
def test_resolve_marks_all_matching_without_producing_and_a_resolved_letter_is_not_replayed(parked):
    operator = user("operator", "view_deadlettermark", "replay_dead_letters", "resolve_dead_letters")
    matching = {"dlq": parked.dlq, "scope": "matching", "reason": "malformed"}

    operator.post(reverse(RESOLVE), matching)
    operator.post(reverse(REPLAY), {"dlq": parked.dlq, "selected": ["0:2"]})

    assert end_offset(parked.servers, parked.topic) == 6
    assert list(DeadLetterMark.objects.values_list("offset", "state")) == [(2, "resolved")]
    log = [entry.get_change_message() for entry in LogEntry.objects.order_by("action_time")]
    assert log[0].startswith("Resolved 1 dead letter(s)") and log[1].startswith("Replayed 0 dead letter(s)")


def test_each_action_needs_its_permission_and_a_post(settings):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "FAILURE_POLICY": "dead-letter", "TOPICS": {"orders": {}}}
    viewer = user("viewer", "view_deadlettermark")
    replayer = user("replayer", "view_deadlettermark", "replay_dead_letters")
    posted = {"dlq": "orders-dlt", "selected": ["0:0"]}

    assert viewer.post(reverse(REPLAY), posted).status_code == 403
    assert replayer.post(reverse(RESOLVE), posted).status_code == 403
    assert user("resolver", "resolve_dead_letters").post(reverse(REPLAY), posted).status_code == 403
    assert replayer.get(reverse(REPLAY)).status_code == 405
    assert user("staff").get(reverse(LIST)).status_code == 403
    assert not DeadLetterMark.objects.exists() and not LogEntry.objects.exists()


def test_a_user_who_is_not_staff_is_sent_to_the_login_page(settings):
    outsider = user("outsider", "view_deadlettermark", "replay_dead_letters", staff=False)

    for response in (outsider.get(reverse(LIST)), outsider.post(reverse(REPLAY), {"dlq": "orders-dlt"})):
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_actions_are_refused_without_a_csrf_token(settings):
    account = user("operator", "view_deadlettermark", "replay_dead_letters")
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = account.cookies

    assert strict.post(reverse(REPLAY), {"dlq": "orders-dlt"}).status_code == 403


def test_the_payload_masking_keeps_keys_and_hides_values():
    text, cut = masked_payload(json.dumps({"email": "alice@example.com", "items": [1, {"sku": "A"}]}).encode())
    assert json.loads(text) == {"email": "***", "items": ["***", {"sku": "***"}]} and not cut
    assert masked_payload(b"\x00binary")[0] == "(7 bytes, not JSON: hidden)"
