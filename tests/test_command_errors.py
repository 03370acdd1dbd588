"""
Bad options and bad settings: consume_events stops with ONE clear line and a non-zero exit code.

Each case is checked in-process (``call_command`` raises ``CommandError`` with the exit code of
:mod:`kafka_consumer_app.exceptions`) and, for representative cases, as a real
``python example/manage.py consume_events`` process whose stderr ends with that one line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest
from django.core.management import CommandError, call_command

from kafka_consumer_app.exceptions import EXIT_CONFIGURATION, EXIT_HANDLER_FAILED
from kafka_consumer_app.settings import topics
from kafka_consumer_app.testing.broker import free_port

from .kafka_utils import MANAGE, ROOT, committed, produce, settings_env, wait_for

#: Exit code of an argparse usage error on the command line.
EXIT_USAGE = 2
#: Prefixes of the environment variables that steer tests/settings.py and the test app; never inherited.
STEERING_PREFIXES = ("KAFKA_", "TESTAPP_")
SUBPROCESS_TIMEOUT = 60


def command_env(settings_module: str = "tests.settings", **variables: str) -> dict[str, str]:
    """The environment of a consume_events process: the test settings plus ``variables``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(STEERING_PREFIXES)}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": settings_module,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example")]),
            **variables,
        }
    )
    return env


def run_command(*args: str, settings_module: str = "tests.settings", **variables: str) -> subprocess.CompletedProcess:
    """Run ``consume_events`` to completion (bounded by SUBPROCESS_TIMEOUT) and capture its output."""
    return subprocess.run(
        [sys.executable, str(MANAGE), "consume_events", *args],
        env=command_env(settings_module, **variables),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def assert_fails_with_one_line(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    """The process exited ``code``, printed no traceback, and its last stderr line holds ``fragments``."""
    line = last_line(result.stderr)
    assert (result.returncode, "Traceback" in result.stderr, [f for f in fragments if f not in line]) == (
        code,
        False,
        [],
    ), f"exit {result.returncode}, last line {line!r}, stderr:\n{result.stderr[-3000:]}"


def consume(*args: str, **options) -> CommandError:
    """Run consume_events in-process, expecting it to fail; return the CommandError."""
    with pytest.raises(CommandError) as caught:
        call_command("consume_events", *args, **options)
    return caught.value


@pytest.fixture
def unreachable(settings):
    """Settings whose bootstrap server is a closed local port, with a one-second connection wait."""
    address = f"127.0.0.1:{free_port()}"
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "BOOTSTRAP_SERVERS": address, "CONNECT_TIMEOUT": 1.0}
    return address


# -- bad command-line options, in-process -----------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-3", "abc"])
def test_max_messages_that_is_not_a_positive_integer_is_refused_on_one_line_naming_the_option(value):
    error = consume("--topic", "orders", "--max-messages", value)
    assert str(error) == f"Error: argument --max-messages: must be a positive integer, not {value!r}"


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan"])
def test_idle_timeout_that_is_not_a_positive_number_is_refused_on_one_line_naming_the_option(value):
    error = consume("--topic", "orders", "--idle-timeout", value)
    assert str(error) == f"Error: argument --idle-timeout: must be a positive number of seconds, not {value!r}"


def test_missing_topic_option_is_refused_on_one_line_naming_topic():
    # openedx-events' alias -t may be listed before --topic.
    assert re.fullmatch(r"Error: the following arguments are required: (-t/)?--topic", str(consume()))


@pytest.mark.broker
@pytest.mark.parametrize(("option", "value"), [("max_messages", 0), ("max_messages", -3), ("idle_timeout", 0)], ids=str)
def test_call_command_keyword_limit_that_is_not_positive_is_refused_like_the_command_line_option(
    kafka_settings, make_topic, option, value
):
    # call_command passes keyword options straight to handle(), skipping the argparse type checks
    # (the command re-checks --extra given that way, but not these); without a check it consumes nothing, exit 0.
    topic = make_topic()
    error = consume(topic=topic, allow_no_handlers=True, **{option: value})
    named = option.replace("_", "-") in str(error).replace("_", "-")
    assert (error.returncode != 0, named, "positive" in str(error)) == (True, True, True)


# -- bad settings, in-process -----------------------------------------------------------------

BAD_SETTINGS = {
    "E001-not-set": None,
    "E002-not-a-dict": "127.0.0.1:9092",
    "E004-no-bootstrap": {"GROUP_ID": "svc"},
    "E008-managed-option": {
        "BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "GROUP_ID": "svc",
        "CONSUMER_CONFIG": {"group.id": "x"},
    },
    "E010-no-group": {"BOOTSTRAP_SERVERS": "127.0.0.1:9092"},
    "E012-bad-deserializer": {
        "BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "GROUP_ID": "svc",
        "TOPICS": {"orders": {"DESERIALIZER": "no_such_module_xyz.decode"}},
    },
}


def configure(settings, value) -> None:
    if value is None:
        del settings.KAFKA_CONSUMER
    else:
        settings.KAFKA_CONSUMER = value


@pytest.mark.parametrize("value", BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_bad_settings_exit_with_the_configuration_exit_code(settings, value):
    configure(settings, value)
    assert consume(topic="orders", allow_no_handlers=True).returncode == EXIT_CONFIGURATION


@pytest.mark.parametrize("value", BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_bad_settings_are_reported_as_the_first_problem_on_one_line(settings, value):
    configure(settings, value)
    error = consume(topic="orders", allow_no_handlers=True)
    assert str(error) == topics.problems(topic="orders")[0].one_line()


def test_group_id_option_supplies_the_group_missing_from_settings(settings, unreachable):
    settings.KAFKA_CONSUMER = {key: value for key, value in settings.KAFKA_CONSUMER.items() if key != "GROUP_ID"}
    # Past the settings check, the command gets as far as trying the (closed) broker.
    error = consume(topic="orders", group_id="from-cli", allow_no_handlers=True)
    assert "could not reach Kafka" in str(error)


# -- receivers --------------------------------------------------------------------------------


@pytest.mark.broker
def test_no_receiver_connected_exits_with_the_configuration_exit_code(kafka_settings, make_topic):
    assert consume(topic=make_topic(), idle_timeout=1).returncode == EXIT_CONFIGURATION


@pytest.mark.broker
def test_no_receiver_connected_names_the_topic_and_the_allow_no_handlers_option(kafka_settings, make_topic):
    topic = make_topic()
    message = str(consume(topic=topic, idle_timeout=1))
    assert (f"no receiver is connected for topic {topic!r}" in message, "--allow-no-handlers" in message) == (
        True,
        True,
    )


@pytest.mark.broker
@pytest.mark.django_db
def test_allow_no_handlers_consumes_and_commits_without_receivers(kafka_settings, make_topic, group_id):
    topic = make_topic()
    servers = kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"]
    produce(servers, topic, [{"n": 1}])

    call_command("consume_events", topic=topic, max_messages=1, allow_no_handlers=True)

    assert committed(servers, group_id, topic, 1) == {0: 1}


# -- the cluster ------------------------------------------------------------------------------


@pytest.mark.broker
def test_topic_missing_on_the_broker_exits_with_the_configuration_exit_code(kafka_settings, received):
    topic = f"missing-{uuid.uuid4().hex[:8]}"
    received(topic)
    assert consume(topic=topic).returncode == EXIT_CONFIGURATION


@pytest.mark.broker
def test_topic_missing_on_the_broker_is_reported_as_not_existing(kafka_settings, received):
    topic = f"missing-{uuid.uuid4().hex[:8]}"
    received(topic)
    assert f"topic {topic!r} does not exist" in str(consume(topic=topic))


@pytest.mark.broker
def test_topic_missing_on_the_broker_is_reported_with_its_prefixed_kafka_name(settings, kafka_settings, received):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "TOPIC_PREFIX": "prod"}
    topic = f"missing-{uuid.uuid4().hex[:8]}"
    received(topic)
    assert f"topic 'prod-{topic}' does not exist" in str(consume(topic=topic))


def test_unreachable_broker_exits_with_the_configuration_exit_code(unreachable):
    assert consume(topic="orders", allow_no_handlers=True).returncode == EXIT_CONFIGURATION


def test_unreachable_broker_is_reported_naming_the_address_and_bootstrap_servers_setting(unreachable):
    message = str(consume(topic="orders", allow_no_handlers=True))
    assert (f"could not reach Kafka at {unreachable}" in message, "KAFKA_CONSUMER['BOOTSTRAP_SERVERS']" in message) == (
        True,
        True,
    )


def test_unreachable_broker_gives_up_soon_after_connect_timeout(unreachable):
    started = time.monotonic()
    consume(topic="orders", allow_no_handlers=True)
    assert time.monotonic() - started < 1.0 + 5.0


# -- malformed messages -----------------------------------------------------------------------


@pytest.fixture
def malformed_topic(kafka_settings, make_topic):
    """A topic holding one valid JSON message at offset 0 and malformed JSON at offset 1."""
    topic = make_topic()
    servers = kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"]
    produce(servers, topic, [b'{"n": 0}', b"{not json"], raw=True)
    return topic


@pytest.mark.broker
@pytest.mark.django_db
def test_malformed_json_exits_with_the_handler_failed_exit_code(malformed_topic, received):
    received(malformed_topic)
    assert consume(topic=malformed_topic, idle_timeout=10).returncode == EXIT_HANDLER_FAILED


@pytest.mark.broker
@pytest.mark.django_db
def test_malformed_json_is_reported_on_one_line_with_its_coordinates(malformed_topic, received):
    received(malformed_topic)
    message = str(consume(topic=malformed_topic, idle_timeout=10))
    assert (
        message.startswith(f"{malformed_topic}[0]@1 is malformed: cannot decode the message value"),
        "\n" in message,
    ) == (
        True,
        False,
    )


@pytest.mark.broker
@pytest.mark.django_db
def test_malformed_json_offset_is_not_committed(kafka_settings, malformed_topic, received, group_id):
    received(malformed_topic)
    consume(topic=malformed_topic, idle_timeout=10)
    servers = kafka_settings.KAFKA_CONSUMER["BOOTSTRAP_SERVERS"]
    # Offset 0 was handled; the committed position stays at the malformed message, offset 1.
    assert committed(servers, group_id, malformed_topic, 1) == {0: 1}


@pytest.mark.broker
@pytest.mark.django_db
def test_malformed_json_is_not_passed_to_receivers(malformed_topic, received):
    got = received(malformed_topic)
    consume(topic=malformed_topic, idle_timeout=10)
    assert [message.offset for message in got] == [0]


# -- as real processes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--max-messages", "-3"],
        ["--max-messages", "abc"],
        ["--idle-timeout", "0"],
    ],
    ids=" ".join,
)
def test_cli_bad_limit_exits_2_with_the_usage_error_as_last_line(args):
    result = run_command("--topic", "orders", *args)
    assert_fails_with_one_line(result, EXIT_USAGE, f"error: argument {args[0]}: must be a positive", repr(args[1]))


def test_cli_missing_topic_exits_2_with_the_usage_error_as_last_line():
    result = run_command()
    assert_fails_with_one_line(result, EXIT_USAGE, "error: the following arguments are required: ", "--topic")


def test_cli_missing_kafka_consumer_setting_exits_1_with_one_line_naming_e001():
    result = run_command("--topic", "orders", settings_module="tests.settings_unconfigured")
    assert_fails_with_one_line(
        result, EXIT_CONFIGURATION, "CommandError: settings.KAFKA_CONSUMER is not set (kafka_consumer_app.E001)."
    )


def test_cli_unreachable_broker_exits_1_with_one_line_naming_bootstrap_servers():
    address = f"127.0.0.1:{free_port()}"
    result = run_command(
        "--topic", "orders", "--allow-no-handlers", KAFKA_BOOTSTRAP_SERVERS=address, KAFKA_CONNECT_TIMEOUT="1"
    )
    assert_fails_with_one_line(
        result,
        EXIT_CONFIGURATION,
        f"CommandError: could not reach Kafka at {address} within 1s",
        "KAFKA_CONSUMER['BOOTSTRAP_SERVERS']",
    )


def test_cli_sigterm_while_waiting_for_an_unreachable_broker_stops_promptly_and_cleanly(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path / "stderr.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(MANAGE), "consume_events", "--topic", "orders", "--allow-no-handlers"],
            env=command_env(KAFKA_BOOTSTRAP_SERVERS=address, KAFKA_CONNECT_TIMEOUT="60"),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        # The connection wait has begun, inside GracefulShutdown, once the first connect failure is logged.
        wait_for(lambda: b"Kafka is unreachable" in log.read_bytes(), timeout=20, what="the first connect failure")
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=8)
        except subprocess.TimeoutExpired:
            code = None
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert code == 0, f"exit {code} (None: still waiting 8s after SIGTERM); stderr tail:\n{log.read_text()[-1500:]}"


@pytest.mark.broker
def test_cli_topic_missing_on_the_broker_exits_1_with_one_line_saying_it_does_not_exist(kafka_broker, group_id):
    topic = f"missing-{uuid.uuid4().hex[:8]}"
    result = run_command(
        "--topic",
        topic,
        KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap_servers,
        KAFKA_GROUP_ID=group_id,
        TESTAPP_TOPIC=topic,
    )
    assert_fails_with_one_line(result, EXIT_CONFIGURATION, f"CommandError: topic {topic!r} does not exist")


@pytest.mark.broker
def test_cli_no_receiver_connected_exits_1_with_one_line_naming_allow_no_handlers(kafka_broker, make_topic, group_id):
    topic = make_topic()
    result = run_command(
        "--topic",
        topic,
        "--idle-timeout",
        "1",
        KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap_servers,
        KAFKA_GROUP_ID=group_id,
    )
    assert_fails_with_one_line(
        result, EXIT_CONFIGURATION, f"CommandError: no receiver is connected for topic {topic!r}", "--allow-no-handlers"
    )


@pytest.mark.broker
def test_cli_malformed_json_exits_3_with_one_line_and_leaves_the_offset_uncommitted(
    kafka_broker, make_topic, group_id, tmp_path
):
    topic = make_topic()
    produce(kafka_broker.bootstrap_servers, topic, [b"\xff not json"], raw=True)
    result = run_command(
        "--topic",
        topic,
        "--idle-timeout",
        "10",
        KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap_servers,
        KAFKA_GROUP_ID=group_id,
        TESTAPP_TOPIC=topic,
        TESTAPP_RECORD=str(tmp_path / "record"),
    )
    assert_fails_with_one_line(result, EXIT_HANDLER_FAILED, f"CommandError: {topic}[0]@0 is malformed")
    assert committed(kafka_broker.bootstrap_servers, group_id, topic, 1) == {0: -1001}


# -- empty, blank and unprintable values (the hardening issue) ------------------------------------


def run_with_settings(tmp_path, *args: str, **kafka_consumer) -> subprocess.CompletedProcess:
    """Run ``consume_events`` with tests.settings' KAFKA_CONSUMER keys overridden, against a closed port."""
    env = command_env(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}", KAFKA_CONNECT_TIMEOUT="1")
    env.update(settings_env(tmp_path, **kafka_consumer))
    return subprocess.run(
        [sys.executable, str(MANAGE), "consume_events", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )


def only_stderr_line(result: subprocess.CompletedProcess) -> str:
    """The one non-empty line of stderr; fails when there are more or none."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def test_cli_empty_topic_exits_2_with_one_line_naming_topic_instead_of_a_traceback():
    result = run_command("--topic", "", "--allow-no-handlers")
    assert (result.returncode, "Traceback" in result.stderr) == (EXIT_USAGE, False), result.stderr
    assert "argument -t/--topic: must be a Kafka topic name, not an empty or blank value ''" in only_stderr_line(result)


@pytest.mark.parametrize("args", [["--group-id", " "], ["-g", "\t"], ["--group_id", "  \n"]], ids=repr)
def test_cli_whitespace_group_id_exits_2_with_one_line_instead_of_aborting_in_librdkafka(args):
    result = run_command("--topic", "orders", "--allow-no-handlers", *args)
    assert (result.returncode, "group-id" in only_stderr_line(result)) == (EXIT_USAGE, True), result.stderr


@pytest.mark.parametrize(
    "kafka_consumer",
    [{"GROUP_ID": " "}, {"GROUP_ID": "\t"}, {"TOPICS": {"orders": {"GROUP_ID": "  "}}}],
    ids=repr,
)
def test_settings_whitespace_group_id_exits_1_with_one_line_instead_of_aborting_in_librdkafka(tmp_path, kafka_consumer):
    result = run_with_settings(tmp_path, "--topic", "orders", "--allow-no-handlers", **kafka_consumer)
    line = only_stderr_line(result)
    assert (result.returncode, "['GROUP_ID']" in line, "kafka_consumer_app.E046" in line) == (
        EXIT_CONFIGURATION,
        True,
        True,
    ), result.stderr


def test_cli_explicit_empty_group_id_is_refused_instead_of_replaced_by_the_settings_group():
    result = run_command("--topic", "orders", "--allow-no-handlers", "--group-id", "")
    assert (result.returncode, "--group-id" in only_stderr_line(result)) == (EXIT_USAGE, True), result.stderr


def test_call_command_explicit_empty_group_id_is_refused_instead_of_replaced_by_the_settings_group(unreachable):
    error = consume(topic="orders", group_id="", allow_no_handlers=True)
    assert (error.returncode, str(error).startswith("--group-id must be a consumer group name")) == (
        EXIT_CONFIGURATION,
        True,
    ), str(error)


def test_cli_explicit_empty_offset_time_is_refused_instead_of_replaying_nothing():
    # e.g. --offset-time "$T" with T unset: it used to consume from the committed offsets and exit 0.
    result = run_command("--topic", "orders", "--allow-no-handlers", "--reset-only", "--offset-time", "")
    assert (result.returncode, "argument --offset-time: must be an ISO 8601 time" in only_stderr_line(result)) == (
        EXIT_USAGE,
        True,
    ), result.stderr


@pytest.mark.parametrize("options", [{"offset_time": ""}, {"extra": '{"offset_time": ""}'}], ids=repr)
def test_call_command_explicit_empty_offset_time_is_refused_instead_of_replaying_nothing(unreachable, options):
    error = consume(topic="orders", reset_only=True, allow_no_handlers=True, **options)
    assert (error.returncode != 0, "offset_time" in str(error).replace("-", "_"), "ISO 8601" in str(error)) == (
        True,
        True,
        True,
    ), str(error)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_cli_idle_timeout_that_is_nan_or_infinite_exits_2_with_one_line(value):
    result = run_command("--topic", "orders", "--idle-timeout", value)
    assert (result.returncode, "--idle-timeout" in only_stderr_line(result)) == (EXIT_USAGE, True), result.stderr
