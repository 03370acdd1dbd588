"""
The operator console in the Django admin: the Consumer groups page, Pause and Resume, permissions and audit.

Through Django's test client against the real broker: the page shows a running group's members and
lag, Pause and Resume write the control row once (a second click changes and logs nothing) and a
LogEntry each, and who may do what.
"""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from kafka_consumer_app.models import ConsumerControl

from .kafka_utils import SHORT_SESSION, produce, settings_env, wait_for

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:kafka_consumer_app_consumercontrol_changelist"


def user(name: str, *permissions: str, staff: bool = True) -> Client:
    """A logged-in client of a user with ``permissions`` (codenames of the app's model)."""
    account = User.objects.create_user(name, password="pw", is_staff=staff)
    account.user_permissions.set(Permission.objects.filter(codename__in=permissions))
    client = Client()
    client.force_login(account)
    return client


@pytest.fixture
def console_topic(kafka_settings, make_topic) -> str:
    """A topic of KAFKA_CONSUMER['TOPICS'] with three messages, none consumed."""
    topic = make_topic(partitions=2)
    kafka_settings.KAFKA_CONSUMER = {**kafka_settings.KAFKA_CONSUMER, "TOPICS": {topic: {}}}
    produce(kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"], topic, [{"n": i} for i in range(3)], partition=0)
    return topic


@pytest.mark.broker
def test_the_page_shows_each_group_its_members_and_its_lag(
    console_topic, kafka_broker, consumers, tmp_path, kafka_settings
):
    group = kafka_settings.KAFKA_CONSUMER["GROUP_ID"]
    consumer = consumers.start(
        kafka_broker.bootstrap_servers,
        console_topic,
        tmp_path / "records",
        "--allow-no-handlers",
        group=group,
        env=settings_env(tmp_path, CONSUMER_CONFIG=SHORT_SESSION, TOPICS={console_topic: {}}),
    )
    viewer = user("viewer", "view_consumercontrol")

    def page_with_member() -> str | None:
        body = viewer.get(reverse(CHANGELIST)).content.decode()
        return body if "<td>0, 1</td>" in body else None

    body = wait_for(page_with_member, timeout=60, what="the page to show the consumer holding both partitions")
    consumer.kill()

    assert console_topic in body and group in body
    assert "State <strong>stable</strong>" in body and "1 member," in body and "/127.0.0.1" in body
    assert 'class="total-lag">' in body and '<td class="lag">' in body
    assert 'name="pause"' not in body, "a viewer without the pause permission is offered Pause"


@pytest.mark.broker
def test_pause_and_resume_write_the_row_once_and_a_log_entry_each(console_topic):
    operator = user("operator", "view_consumercontrol", "pause_consumers")
    pause = reverse("admin:kafka_consumer_app_pause", args=[console_topic])
    resume = reverse("admin:kafka_consumer_app_resume", args=[console_topic])

    first, again = operator.post(pause), operator.post(pause)
    row = ConsumerControl.objects.get(topic=console_topic)
    paused = (row.paused, row.changed_by)
    page = operator.get(reverse(CHANGELIST)).content.decode()
    operator.post(resume)

    assert first.status_code == again.status_code == 302
    assert paused == (True, "operator") and "<strong>Paused</strong> by operator" in page and "Resume" in page
    assert not ConsumerControl.objects.get(topic=console_topic).paused
    entries = [entry.get_change_message() for entry in LogEntry.objects.order_by("action_time")]
    assert len(entries) == 2 and entries[0].startswith("Paused the consumers of") and "Resumed" in entries[1]


@pytest.mark.broker
def test_pause_needs_its_permission_and_a_post(console_topic):
    viewer = user("viewer", "view_consumercontrol")
    operator = user("operator", "view_consumercontrol", "pause_consumers")
    pause = reverse("admin:kafka_consumer_app_pause", args=[console_topic])

    assert viewer.post(pause).status_code == 403
    assert operator.get(pause).status_code == 405
    assert not ConsumerControl.objects.filter(topic=console_topic, paused=True).exists()
    assert LogEntry.objects.count() == 0


def test_a_user_who_is_not_staff_is_sent_to_the_login_page(settings):
    outsider = user("outsider", "view_consumercontrol", "pause_consumers", staff=False)

    response = outsider.get(reverse(CHANGELIST))
    posted = outsider.post(reverse("admin:kafka_consumer_app_pause", args=["orders"]))

    assert response.status_code == 302 and "/login/" in response["Location"]
    assert posted.status_code == 302 and not ConsumerControl.objects.exists()


def test_staff_without_the_view_permission_is_refused(settings):
    assert user("staff").get(reverse(CHANGELIST)).status_code == 403


def test_a_topic_that_is_not_configured_cannot_be_paused(settings):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "TOPICS": {"orders": {}}}
    operator = user("operator", "view_consumercontrol", "pause_consumers")

    assert operator.post(reverse("admin:kafka_consumer_app_pause", args=["invoices"])).status_code == 404
