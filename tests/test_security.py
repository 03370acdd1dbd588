"""
SASL (PLAIN, SCRAM-SHA-512) and TLS through the librdkafka pass-through, against a dedicated broker.

The module's broker has, besides its PLAINTEXT listener (used here only to create topics and
produce), a SASL_PLAINTEXT listener with a PLAIN user and a SCRAM-SHA-512 user, and a SASL_SSL
listener with a self-signed certificate. Secrets must never reach a log line, an error or
``manage.py check``: the passwords are random and distinctive, and every output is searched.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from kafka_consumer_app.redaction import MASK, redacted
from kafka_consumer_app.testing.broker import LocalKafkaBroker

from .kafka_utils import MANAGE, produce, settings_env

pytestmark = [pytest.mark.broker, pytest.mark.django_db]

PLAIN_USER = "alice"
PLAIN_PASSWORD = f"plain-{uuid.uuid4().hex}"
SCRAM_USER = "bob"
SCRAM_PASSWORD = f"scram-{uuid.uuid4().hex}"
WRONG_PASSWORD = f"wrong-{uuid.uuid4().hex}"
#: An authentication failure must end the process well before this.
FAIL_FAST_SECONDS = 15


@pytest.fixture(scope="module")
def sasl_broker() -> Iterator[LocalKafkaBroker]:
    """A broker of its own with SASL_PLAINTEXT and SASL_SSL listeners (the suite's broker stays PLAINTEXT)."""
    broker = LocalKafkaBroker(
        plain_users={PLAIN_USER: PLAIN_PASSWORD}, scram_users={SCRAM_USER: SCRAM_PASSWORD}, tls=True
    )
    try:
        broker.start()
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def topic(sasl_broker: LocalKafkaBroker) -> str:
    """A fresh topic on the SASL broker holding three messages."""
    name = f"secure-{uuid.uuid4().hex[:10]}"
    sasl_broker.create_topic(name, partitions=1)
    produce(sasl_broker.bootstrap_servers, name, [{"n": i} for i in range(3)])
    return name


def sasl_config(mechanism: str, password: str | None = None, tls: Path | None = None) -> dict[str, str]:
    """CONSUMER_CONFIG for ``mechanism``'s user, with its right password unless ``password`` is given."""
    user, right = (PLAIN_USER, PLAIN_PASSWORD) if mechanism == "PLAIN" else (SCRAM_USER, SCRAM_PASSWORD)
    config = {
        "security.protocol": "SASL_SSL" if tls is not None else "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password or right,
    }
    if tls is not None:
        config["ssl.ca.location"] = str(tls)
    return config


def configure(settings, servers: str, consumer_config: dict[str, str], **extra) -> None:
    settings.KAFKA_CONSUMER = {
        **settings.KAFKA_CONSUMER,
        "BOOTSTRAP_SERVERS": servers,
        "GROUP_ID": f"secure-{uuid.uuid4().hex[:8]}",
        "CONSUMER_CONFIG": consumer_config,
        **extra,
    }


def command_error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("CommandError:")]


# -- right credentials -----------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_the_right_credentials_consume_over_sasl(settings, sasl_broker, topic, received, mechanism):
    configure(settings, sasl_broker.sasl_bootstrap_servers, sasl_config(mechanism))
    got = received(topic)

    call_command("consume_events", topic=topic, max_messages=3)

    assert [message.value for message in got] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_scram_over_tls_with_the_brokers_certificate_consumes(settings, sasl_broker, topic, received):
    configure(settings, sasl_broker.sasl_ssl_bootstrap_servers, sasl_config("SCRAM-SHA-512", tls=sasl_broker.ca_file))
    got = received(topic)

    call_command("consume_events", topic=topic, max_messages=3)

    assert len(got) == 3


def test_consumer_status_authenticates_with_the_same_options(settings, sasl_broker, topic):
    configure(settings, sasl_broker.sasl_bootstrap_servers, sasl_config("SCRAM-SHA-512"))
    out = StringIO()

    call_command("consumer_status", topic=topic, json=True, stdout=out)

    assert json.loads(out.getvalue())["total_lag"] == 3


def test_consumer_status_with_wrong_credentials_is_one_line_and_exit_code_1(settings, sasl_broker, topic):
    configure(settings, sasl_broker.sasl_bootstrap_servers, sasl_config("PLAIN", WRONG_PASSWORD))
    started = time.monotonic()

    with pytest.raises(CommandError) as caught:
        call_command("consumer_status", topic=topic, stdout=StringIO())

    assert time.monotonic() - started < FAIL_FAST_SECONDS
    assert caught.value.returncode == 1
    assert str(caught.value).startswith("Kafka rejected the credentials (")
    assert WRONG_PASSWORD not in str(caught.value)


# -- wrong credentials and certificates ----------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_wrong_credentials_end_the_process_fast_with_one_clear_line(sasl_broker, topic, tmp_path, consumers, mechanism):
    env = settings_env(tmp_path, CONSUMER_CONFIG=sasl_config(mechanism, WRONG_PASSWORD))
    started = time.monotonic()
    process = consumers.start(sasl_broker.sasl_bootstrap_servers, topic, tmp_path / "records.txt", group="g", env=env)
    code = process.wait(FAIL_FAST_SECONDS + 15)
    elapsed = time.monotonic() - started
    output = process.output()

    print(f"wrong {mechanism} credentials: exit {code} after {elapsed:.1f}s")
    assert code == 1, output
    assert elapsed < FAIL_FAST_SECONDS, f"took {elapsed:.1f}s:\n{output}"
    assert "Traceback" not in output
    lines = command_error_lines(output)
    assert len(lines) == 1, output
    assert lines[0].startswith("CommandError: Kafka rejected the credentials (")
    assert "SASL authentication error" in lines[0] and "KAFKA_CONSUMER['CONSUMER_CONFIG']" in lines[0]
    assert output.rstrip().endswith(lines[0])


def test_a_plain_user_is_not_a_scram_user(settings, sasl_broker, topic, received):
    config = {**sasl_config("SCRAM-SHA-512"), "sasl.username": PLAIN_USER, "sasl.password": PLAIN_PASSWORD}
    configure(settings, sasl_broker.sasl_bootstrap_servers, config)
    received(topic)

    with pytest.raises(CommandError) as caught:
        call_command("consume_events", topic=topic, max_messages=1)

    assert caught.value.returncode == 1
    assert str(caught.value).startswith("Kafka rejected the credentials")


def test_tls_without_the_brokers_certificate_fails_fast_with_one_line(settings, sasl_broker, topic, received):
    config = sasl_config("SCRAM-SHA-512", tls=sasl_broker.ca_file)
    del config["ssl.ca.location"]  # the system's CAs do not know the self-signed certificate
    configure(settings, sasl_broker.sasl_ssl_bootstrap_servers, config)
    received(topic)
    started = time.monotonic()

    with pytest.raises(CommandError) as caught:
        call_command("consume_events", topic=topic, max_messages=1)

    elapsed = time.monotonic() - started
    assert caught.value.returncode == 1
    assert str(caught.value).startswith("the TLS handshake with Kafka failed (")
    assert "certificate verify failed" in str(caught.value) and "\n" not in str(caught.value)
    assert elapsed < FAIL_FAST_SECONDS, f"took {elapsed:.1f}s"


def test_an_option_librdkafka_refuses_is_one_line_not_a_traceback(settings, sasl_broker, topic, received):
    config = {**sasl_config("SCRAM-SHA-512", tls=sasl_broker.ca_file), "ssl.ca.location": "/nonexistent/ca.pem"}
    configure(settings, sasl_broker.sasl_ssl_bootstrap_servers, config)
    received(topic)

    with pytest.raises(CommandError) as caught:
        call_command("consume_events", topic=topic, max_messages=1)

    assert caught.value.returncode == 1
    assert str(caught.value).startswith("librdkafka refused the configuration (")
    assert "ssl.ca.location" in str(caught.value)


# -- secrets stay secret ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "expected_exit"), [(SCRAM_PASSWORD, 0), (WRONG_PASSWORD, 1)], ids=["right", "wrong"]
)
def test_no_password_appears_in_any_output_even_at_the_highest_debug_levels(
    sasl_broker, topic, tmp_path, consumers, password, expected_exit
):
    config = {**sasl_config("SCRAM-SHA-512", password), "debug": "all"}
    env = settings_env(tmp_path, CONSUMER_CONFIG=config)
    process = consumers.start(
        sasl_broker.sasl_bootstrap_servers,
        topic,
        tmp_path / "records.txt",
        "-v",
        "3",
        "--max-messages",
        "1",
        group=f"leak-{uuid.uuid4().hex[:8]}",
        env=env,
    )
    code = process.wait(60)
    output = process.output()

    assert code == expected_exit, output[-3000:]
    # The output is the verbose one: librdkafka's SASL debug lines and its configuration dump.
    assert "SASL" in output and "sasl.password" in output and len(output.splitlines()) > 100
    if expected_exit == 0:
        assert f"'sasl.password': '{MASK}'" in output  # the app's own configuration line, masked
    leaking = [line for line in output.splitlines() if password in line]
    assert leaking == []


def test_no_password_appears_in_the_output_of_manage_py_check(tmp_path):
    secret = f"check-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        **settings_env(
            tmp_path,
            CONSUMER_CONFIG={
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "scram-sha-512",  # E043: wrong case
                "sasl.username": "bob",
                "sasl.password": secret,
                "ssl.key.password": [secret],  # E041: not a string
            },
            TOPICS={"orders": {"CONSUMER_CONFIG": {"sasl.oauthbearer.config": None}}},  # E041
        ),
    }
    result = subprocess.run(
        [sys.executable, str(MANAGE), "check"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr

    assert result.returncode == 1, output
    assert "kafka_consumer_app.E043" in output and "kafka_consumer_app.E041" in output
    assert "'ssl.key.password'" in output  # the key is named...
    assert secret not in output  # ...its value never


def test_the_librdkafka_logger_masks_secret_values_of_the_settings(settings, caplog):
    secret = f"logged-{uuid.uuid4().hex}"
    settings.KAFKA_CONSUMER = {
        **settings.KAFKA_CONSUMER,
        "TOPICS": {"orders": {"CONSUMER_CONFIG": {"sasl.password": secret}}},
    }
    caplog.set_level(logging.DEBUG, logger="kafka_consumer_app")
    librdkafka = logging.getLogger("kafka_consumer_app.librdkafka")

    # What a librdkafka debug line that quoted a secret would look like (the format confluent-kafka uses).
    librdkafka.debug("%s [%s] %s", "SASL", "rdkafka#consumer-1", f"client first message with {secret}")
    librdkafka.debug("%s [%s] %s", "CONF", "rdkafka#consumer-1", "  sasl.oauthbearer.client.secret=abc123xyz")
    logging.getLogger("kafka_consumer_app.engine.client").warning("Kafka client error (%s)", f"bad {secret}")

    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert not [message for message in messages if secret in message or "abc123xyz" in message]
    assert messages[0].endswith(f"client first message with {MASK}")
    assert messages[1].endswith(f"sasl.oauthbearer.client.secret={MASK}")


def test_redacted_masks_secret_keys_at_any_depth_and_keeps_the_rest():
    config = {
        "BOOTSTRAP_SERVERS": "kafka:9092",
        "CONSUMER_CONFIG": {
            "security.protocol": "SASL_SSL",
            "sasl.username": "bob",
            "sasl.password": "p1",
            "ssl.key.password": "p2",
            "ssl.key.pem": "-----BEGIN PRIVATE KEY-----",
            "sasl.oauthbearer.config": "principal=bob clientSecret=s3",
            "sasl.oauthbearer.client.secret": "s4",
        },
        "TOPICS": {"orders": {"CONSUMER_CONFIG": {"SASL.PASSWORD": "p5"}}},
    }

    masked = redacted(config)

    assert masked["CONSUMER_CONFIG"] == {
        "security.protocol": "SASL_SSL",
        "sasl.username": "bob",
        "sasl.password": MASK,
        "ssl.key.password": MASK,
        "ssl.key.pem": MASK,
        "sasl.oauthbearer.config": MASK,
        "sasl.oauthbearer.client.secret": MASK,
    }
    assert masked["TOPICS"]["orders"]["CONSUMER_CONFIG"] == {"SASL.PASSWORD": MASK}
    assert masked["BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert config["CONSUMER_CONFIG"]["sasl.password"] == "p1"  # the input is left alone


# -- every command fails fast on rejected credentials and certificates ----------------------------


@pytest.mark.parametrize("command", ["replay_dead_letters", "consumer_status"])
def test_wrong_credentials_end_every_kafka_command_fast_with_one_line_naming_them(
    settings, sasl_broker, topic, command
):
    configure(settings, sasl_broker.sasl_bootstrap_servers, sasl_config("SCRAM-SHA-512", WRONG_PASSWORD))
    started = time.monotonic()

    with pytest.raises(CommandError) as caught:
        call_command(command, topic=topic, stdout=StringIO())

    elapsed = time.monotonic() - started
    print(f"{command} with a wrong password: exit {caught.value.returncode} after {elapsed:.1f}s")
    assert elapsed < FAIL_FAST_SECONDS, f"took {elapsed:.1f}s"
    assert caught.value.returncode == 1
    assert str(caught.value).startswith("Kafka rejected the credentials (")
    assert "check the sasl.* and ssl.* options" in str(caught.value) and "\n" not in str(caught.value)
    assert WRONG_PASSWORD not in str(caught.value) and "BOOTSTRAP_SERVERS" not in str(caught.value)


@pytest.mark.parametrize("command", ["replay_dead_letters", "consumer_status"])
def test_an_unverifiable_certificate_ends_every_kafka_command_fast_as_a_tls_failure(
    settings, sasl_broker, topic, command
):
    config = sasl_config("SCRAM-SHA-512", tls=sasl_broker.ca_file)
    del config["ssl.ca.location"]  # the system's CAs do not know the self-signed certificate
    configure(settings, sasl_broker.sasl_ssl_bootstrap_servers, config)
    started = time.monotonic()

    with pytest.raises(CommandError) as caught:
        call_command(command, topic=topic, stdout=StringIO())

    assert time.monotonic() - started < FAIL_FAST_SECONDS
    assert caught.value.returncode == 1
    assert str(caught.value).startswith("the TLS handshake with Kafka failed (")
    assert "certificate verify failed" in str(caught.value)
