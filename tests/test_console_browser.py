"""
The operator console as a person uses it: real headless Chromium on the live server, the real broker.

Users log in through the admin's login form. The Consumer groups page shows the lag of a group that
``consume_events`` left behind (produced minus consumed); Pause and Resume are buttons that change the
control row and write a LogEntry each; staff without the view permission get the admin's 403 page, and
a user who is not staff does not get past the login form. A letter parked by a real ``consume_events``
run is found on the Dead letters list, opened, and replayed once: a running fixed consumer handles the
copy, and a reload and a second Replay of everything matching produce nothing more. Each page is saved
as a screenshot (tests/browser_utils.py: ``make screenshots`` refreshes docs/images/ with them).
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.urls import reverse
from selenium.webdriver.support.ui import Select

from kafka_consumer_app.models import ConsumerControl, DeadLetterMark

from .browser_utils import Browser
from .kafka_utils import produce, read_records, wait_for
from .test_console_dead_letters import end_offset

pytestmark = [pytest.mark.broker, pytest.mark.browser]

PRODUCED, CONSUMED = 5, 3
PASSWORD = "a-browser-password"


def consumer_groups() -> str:
    """The path of the Consumer groups page."""
    return reverse("admin:kafka_consumer_app_consumercontrol_changelist")


@pytest.fixture
def account(settings):
    """``account(name, *codenames, staff=True)``: a user of the app's permissions with PASSWORD."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # login is not under test

    def create(name: str, *permissions: str, staff: bool = True) -> User:
        user = User.objects.create_user(name, password=PASSWORD, is_staff=staff)
        user.user_permissions.set(Permission.objects.filter(codename__in=permissions))
        return user

    return create


@pytest.fixture
def consumed_topic(kafka_settings, kafka_broker) -> str:
    """
    A topic of TOPICS with PRODUCED messages, of which ``consume_events --max-messages`` consumed CONSUMED.

    Its name and group are short (and unique) for the screenshots' sake.
    """
    topic = f"orders-{uuid.uuid4().hex[:6]}"
    kafka_broker.create_topic(topic, 1)
    kafka_settings.KAFKA_CONSUMER = {
        **kafka_settings.KAFKA_CONSUMER,
        "GROUP_ID": f"orders-service-{topic[-6:]}",
        "TOPICS": {topic: {}},
    }
    produce(kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"], topic, [{"n": i} for i in range(PRODUCED)])
    call_command("consume_events", topic=topic, max_messages=CONSUMED, allow_no_handlers=True)
    return topic


@pytest.fixture
def configured_topic(kafka_settings) -> str:
    """A topic of TOPICS, which the pages that must not be shown would name."""
    kafka_settings.KAFKA_CONSUMER = {**kafka_settings.KAFKA_CONSUMER, "TOPICS": {"invoices-never-shown": {}}}
    return "invoices-never-shown"


def log_in_to_consumer_groups(browser: Browser, username: str) -> None:
    """Open the Consumer groups page logged out, and log in on the form it sends us to."""
    browser.open(consumer_groups())
    browser.wait("#login-form")
    browser.log_in(username, PASSWORD)


def test_a_viewer_logs_in_and_sees_the_lag_that_consume_events_left(browser, account, consumed_topic, kafka_settings):
    account("viewer", "view_consumercontrol")

    log_in_to_consumer_groups(browser, "viewer")
    section = browser.wait(f"section#group-{consumed_topic}")
    browser.screenshot("console-consumer-groups")

    assert browser.wait(".total-lag").text == str(PRODUCED - CONSUMED)
    assert [cell.text for cell in section.find_elements("css selector", "td.lag")] == [str(PRODUCED - CONSUMED)]
    assert f"group {kafka_settings.KAFKA_CONSUMER['GROUP_ID']}" in section.text
    assert browser.missing("input[name=pause]"), "a viewer without the pause permission is offered Pause"


def test_an_operator_pauses_and_resumes_with_the_buttons(browser, account, consumed_topic):
    account("operator", "view_consumercontrol", "pause_consumers")

    log_in_to_consumer_groups(browser, "operator")
    browser.click("input[name=pause]")
    browser.wait(".messagelist .success", f"Paused the consumers of {consumed_topic}")
    offered = browser.wait(".pause-state", "Paused by operator").find_element("css selector", "input[name=resume]")
    button = offered.get_attribute("value")
    browser.screenshot("console-paused")
    row = ConsumerControl.objects.get(topic=consumed_topic)
    paused = (row.paused, row.changed_by)
    browser.click("input[name=resume]")
    browser.wait(".messagelist .success", f"Resumed the consumers of {consumed_topic}")

    assert paused == (True, "operator") and button == f"Resume {consumed_topic}"
    assert not ConsumerControl.objects.get(topic=consumed_topic).paused
    assert browser.wait("input[name=pause]") and browser.missing("input[name=resume]")
    entries = [entry.get_change_message() for entry in LogEntry.objects.order_by("action_time")]
    assert len(entries) == 2 and entries[0].startswith("Paused the consumers of") and entries[1].startswith("Resumed")


def test_staff_without_the_view_permission_get_the_403_page(browser, account, configured_topic):
    account("staff")

    log_in_to_consumer_groups(browser, "staff")
    browser.wait("h1", "403 Forbidden")
    browser.screenshot("console-forbidden")

    assert configured_topic not in browser.text()
    browser.open(reverse("admin:index"))
    assert "You don\u2019t have permission to view or edit anything" in browser.wait("#content-main").text


def test_a_user_who_is_not_staff_does_not_get_past_the_login_form(browser, account, configured_topic):
    account("outsider", "view_consumercontrol", "pause_consumers", staff=False)

    log_in_to_consumer_groups(browser, "outsider")
    error = browser.wait(".errornote", "staff account")
    browser.screenshot("console-login-refused")

    assert "/login/" in browser.driver.current_url and configured_topic not in browser.text()
    assert error.is_displayed() and browser.missing("input[name=pause]")


@pytest.fixture
def parked_letter(kafka_settings, kafka_broker, tmp_path, consumers):
    """
    A topic whose ``consume_events`` run parked id 1 (its receiver failed) at offset 0 of ``<topic>-dlt``.

    Returns ``(topic, dead-letter topic, record file)``; the run has exited.
    """
    servers = kafka_broker.bootstrap_servers
    topic = f"payments-{uuid.uuid4().hex[:6]}"
    kafka_broker.create_topic(topic, 1)
    kafka_broker.create_topic(f"{topic}-dlt", 1)
    kafka_settings.KAFKA_CONSUMER = {
        **kafka_settings.KAFKA_CONSUMER,
        "FAILURE_POLICY": "dead-letter",
        "TOPICS": {topic: {}},
    }
    produce(servers, topic, [{"id": 0}, {"id": 1, "fail": True}])
    record = tmp_path / "records.txt"
    group = kafka_settings.KAFKA_CONSUMER["GROUP_ID"]
    env = {"KAFKA_FAILURE_POLICY": "dead-letter", "KAFKA_RETRY_ATTEMPTS": "1"}
    parking = consumers.start(servers, topic, record, "--idle-timeout", "2", group=group, env=env)
    assert parking.wait(60) == 0, parking.output()
    return topic, f"{topic}-dlt", record


def test_an_operator_replays_a_parked_letter_once_and_the_running_consumer_handles_it_once(
    browser, account, parked_letter, kafka_settings, consumers
):
    topic, dlq, record = parked_letter
    servers, group = kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"], kafka_settings.KAFKA_CONSUMER["GROUP_ID"]
    env = {"KAFKA_FAILURE_POLICY": "dead-letter", "TESTAPP_FIXED": "1"}
    fixed = consumers.start(servers, topic, record, group=group, env=env)
    account("operator", "view_deadlettermark", "view_dead_letter_payload", "replay_dead_letters")
    letters = f"{reverse('admin:kafka_consumer_app_deadlettermark_changelist')}?dlq={dlq}"

    browser.open(letters)
    browser.log_in("operator", PASSWORD)
    browser.wait("tr.dead-letter#dead-letter-0-0 span.state-parked")
    browser.screenshot("console-dead-letters")
    browser.click("#dead-letter-0-0 a.dead-letter-detail")
    browser.wait("#dead-letter-detail")
    browser.screenshot("console-dead-letter")
    browser.open(letters)
    browser.wait("#dead-letter-0-0 input.dead-letter-select").click()
    browser.click("#replay-button")
    browser.wait("#dead-letter-0-0 span.state-replayed")
    handled = wait_for(
        lambda: [r.id for r in read_records(record) if r.pid == fixed.pid and r.kind == "topic"],
        timeout=30,
        what="the running consumer to handle the replayed copy",
    )
    browser.driver.refresh()
    browser.wait("#dead-letter-0-0 span.state-replayed")
    Select(browser.wait("#action-scope")).select_by_value("matching")
    browser.click("#replay-button")
    browser.wait("#dead-letter-0-0 span.state-replayed")

    assert handled == [1]
    assert end_offset(servers, topic) == 3, "the letter was replayed more than once"
    assert list(DeadLetterMark.objects.values_list("offset", "state", "changed_by")) == [(0, "replayed", "operator")]
