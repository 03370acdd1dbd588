"""
Connection and security: the brokers, the consumer group, the topic prefix, librdkafka options, timeouts.

Keys: BOOTSTRAP_SERVERS, GROUP_ID, TOPIC_PREFIX, CONSUMER_CONFIG, PRODUCER_CONFIG, POLL_TIMEOUT,
CONNECT_TIMEOUT and PROGRESS_INTERVAL; per topic GROUP_ID and CONSUMER_CONFIG. A topic's
CONSUMER_CONFIG is merged over the top-level one in :func:`consumer_config` only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from kafka_consumer_app.settings.base import (
    DocTable,
    Problem,
    raw_settings,
    seconds_setting_problems,
    topic_overrides,
    topic_where,
)
from kafka_consumer_app.validation import (
    KAFKA_TOPIC_NAME,
    group_id_problem,
    librdkafka_value_problem,
    text_problem,
)

#: The top-level keys of this subject: (default, description).
SETTINGS: DocTable = {
    "BOOTSTRAP_SERVERS": (
        None,
        "Required. Comma-separated host:port list (or a list of strings) of the Kafka brokers.",
    ),
    "GROUP_ID": (
        None,
        "Consumer group used for every topic without its own GROUP_ID and when --group-id is not given. One of "
        "this, the topic's GROUP_ID or --group-id is required. At most 249 characters, like a topic name (Kafka "
        "allows up to its protocol's 32767 bytes; 249 keeps the group usable where tools derive topic names from "
        "it), without control characters or surrounding spaces.",
    ),
    "TOPIC_PREFIX": (
        "",
        "Environment prefix. When set, --topic X consumes the Kafka topic '<prefix>-X' "
        "(the Open edX convention). Receivers and TOPICS keys still use the unprefixed name X.",
    ),
    "CONSUMER_CONFIG": (
        {},
        "librdkafka options passed through verbatim: security.protocol, sasl.*, ssl.*, timeouts, "
        "auto.offset.reset, group.protocol... Options the app manages itself (see MANAGED_OPTIONS) are refused.",
    ),
    "POLL_TIMEOUT": (
        1.0,
        "Seconds one poll() waits for a message. Bounds how fast SIGTERM and --idle-timeout are noticed.",
    ),
    "CONNECT_TIMEOUT": (
        30.0,
        "Seconds to wait at startup for the cluster's metadata before giving up with a non-zero exit.",
    ),
    "PROGRESS_INTERVAL": (
        60.0,
        "Seconds between INFO progress lines (messages handled and rate).",
    ),
    "PRODUCER_CONFIG": (
        {},
        "librdkafka options of the dead-letter producer. The security.*, sasl.*, ssl.* and other "
        "connection options of CONSUMER_CONFIG are copied to it; these override them.",
    ),
}

#: The per-topic keys of this subject, under ``TOPICS[<topic>]``.
TOPIC_SETTINGS: DocTable = {
    "GROUP_ID": (None, "Consumer group for this topic; overrides the top-level GROUP_ID."),
    "CONSUMER_CONFIG": ({}, "librdkafka options for this topic only, merged over the top-level ones."),
}

_NUMBER_SETTINGS = ("POLL_TIMEOUT", "CONNECT_TIMEOUT", "PROGRESS_INTERVAL")

#: librdkafka options the app sets itself; letting users override them would break its guarantees.
MANAGED_OPTIONS: dict[str, str] = {
    "bootstrap.servers": "set KAFKA_CONSUMER['BOOTSTRAP_SERVERS'] instead",
    "group.id": "set KAFKA_CONSUMER['GROUP_ID'], TOPICS[<topic>]['GROUP_ID'] or --group-id instead",
    "enable.auto.offset.store": "offsets are stored only after every receiver returned (at-least-once)",
    "enable.auto.commit": "stored offsets are committed automatically and on revoke and shutdown",
}
#: Librdkafka options of the dead-letter producer that the app sets itself.
MANAGED_PRODUCER_OPTIONS: dict[str, str] = {
    "bootstrap.servers": "the producer uses KAFKA_CONSUMER['BOOTSTRAP_SERVERS']",
}
#: librdkafka's security.protocol values (it accepts any case).
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: librdkafka's sasl.mechanism values (case-sensitive).
SASL_MECHANISMS = ("GSSAPI", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
#: Mechanisms that authenticate with sasl.username and sasl.password.
PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

_TOP_CONFIG = "KAFKA_CONSUMER['CONSUMER_CONFIG']"
_PRODUCER = "KAFKA_CONSUMER['PRODUCER_CONFIG']"


# -- readers and resolution ------------------------------------------------------------------


def bootstrap_servers() -> str | None:
    """Return the brokers as one comma-separated string, or None when unset."""
    value = raw_settings().get("BOOTSTRAP_SERVERS")
    if isinstance(value, (list, tuple)):
        value = ",".join(str(item) for item in value)
    return value or None


def topic_prefix() -> str:
    """Return the environment prefix ('' when unset)."""
    return raw_settings().get("TOPIC_PREFIX") or ""


def kafka_topic_name(topic: str) -> str:
    """Return the Kafka topic that ``--topic topic`` consumes, with the prefix applied."""
    prefix = topic_prefix()
    return f"{prefix}-{topic}" if prefix else topic


def group_id(topic: str, override: str | None = None) -> str | None:
    """Return the consumer group for ``topic``: ``--group-id``, then the topic's, then the default."""
    if override is not None:  # an explicit value, even an empty one (refused by the checks), is never replaced
        return override
    return topic_overrides(topic).get("GROUP_ID") or raw_settings().get("GROUP_ID") or None


def consumer_config(top: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A topic's CONSUMER_CONFIG merged over the top-level one; either is ignored when it is not a dict."""
    base, own = top.get("CONSUMER_CONFIG"), overrides.get("CONSUMER_CONFIG")
    return {**(base if isinstance(base, dict) else {}), **(own if isinstance(own, dict) else {})}


def seconds(top: Mapping[str, Any], key: str) -> float:
    """One of POLL_TIMEOUT, CONNECT_TIMEOUT and PROGRESS_INTERVAL, or its default."""
    return float(top.get(key, SETTINGS[key][0]))


def max_poll_interval(config: Mapping[str, Any]) -> float:
    """librdkafka's max.poll.interval.ms, in seconds (300 when unset)."""
    return float(config.get("max.poll.interval.ms", 300000)) / 1000


def valid_max_poll_interval(config: Mapping[str, Any]) -> bool:
    """Whether max.poll.interval.ms (or its default) is a finite positive number."""
    value = config.get("max.poll.interval.ms", 300000)
    if isinstance(value, bool):
        return False
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and number > 0


# -- checks ----------------------------------------------------------------------------------


def group_override_problems(group_override: str | None) -> list[Problem]:
    """``--group-id`` reaches librdkafka as it is: E051 when librdkafka would refuse it."""
    if group_override is None or not group_id_problem(group_override):
        return []
    return [
        Problem(
            "kafka_consumer_app.E051",
            f"--group-id {group_id_problem(group_override)}",
            "Give a consumer group name, or leave --group-id out to use the group of the settings.",
        )
    ]


def resolved_group_problems(topic: str | None, group_override: str | None) -> list[Problem]:
    """E010: the command's topic must end up with a consumer group."""
    if topic is None or group_id(topic, group_override):
        return []
    return [
        Problem(
            "kafka_consumer_app.E010",
            f"no consumer group is configured for topic {topic!r}",
            "Set KAFKA_CONSUMER['GROUP_ID'], KAFKA_CONSUMER['TOPICS'][topic]['GROUP_ID'], or pass --group-id.",
        )
    ]


def problems(value: dict[str, Any]) -> list[Problem]:
    """The top-level keys of this subject."""
    found = _bootstrap_problems(value.get("BOOTSTRAP_SERVERS"))
    found += seconds_setting_problems(value, SETTINGS, _NUMBER_SETTINGS)
    found += _group_id_problems(value.get("GROUP_ID"), "KAFKA_CONSUMER['GROUP_ID']", top_level=True)
    found += _string_problems(value)
    found += _options_problems(value.get("CONSUMER_CONFIG"), _TOP_CONFIG, MANAGED_OPTIONS)
    found += _bootstrap_entry_problems(value.get("BOOTSTRAP_SERVERS"))
    found += _prefix_problems(value.get("TOPIC_PREFIX"))
    producer = value.get("PRODUCER_CONFIG")
    if producer is not None and not isinstance(producer, dict):
        found.append(
            Problem(
                "kafka_consumer_app.E018",
                "KAFKA_CONSUMER['PRODUCER_CONFIG'] must be a dict of librdkafka options",
                "Use librdkafka property names as keys, e.g. {'linger.ms': 0}.",
            )
        )
    elif isinstance(producer, dict):
        found += _options_problems(producer, _PRODUCER, MANAGED_PRODUCER_OPTIONS)
    top_config = value.get("CONSUMER_CONFIG")
    if top_config is None or isinstance(top_config, dict):
        found += _credentials_problems(top_config or {}, _TOP_CONFIG)
    return found


def topic_problems(top: dict[str, Any], name: Any, overrides: dict[str, Any]) -> list[Problem]:
    """One topic's GROUP_ID and CONSUMER_CONFIG (the latter also merged over the top level)."""
    where = topic_where(name)
    found = []
    if "GROUP_ID" in overrides:
        found += _group_id_problems(overrides["GROUP_ID"], f"{where}['GROUP_ID']", top_level=False)
    own = overrides.get("CONSUMER_CONFIG")
    found += _options_problems(own, f"{where}['CONSUMER_CONFIG']", MANAGED_OPTIONS)
    if isinstance(own, dict):
        merged = consumer_config(top, overrides)
        found += _credentials_problems(merged, f"{where}['CONSUMER_CONFIG'] (merged over the top level)")
    return found


def _bootstrap_problems(servers: Any) -> list[Problem]:
    if not servers or not isinstance(servers, (str, list, tuple)):
        return [
            Problem(
                "kafka_consumer_app.E004",
                "KAFKA_CONSUMER['BOOTSTRAP_SERVERS'] is missing or empty",
                "Set it to the brokers' 'host:port' list, e.g. 'kafka-1:9092,kafka-2:9092'.",
            )
        ]
    return []


def _bootstrap_entry_problems(servers: Any) -> list[Problem]:
    if not servers or not isinstance(servers, (str, list, tuple)):
        return []  # missing, empty or of the wrong type: E004
    entries = servers.split(",") if isinstance(servers, str) else servers
    if all(isinstance(entry, str) and not text_problem(entry.strip(), "a broker") for entry in entries):
        return []
    return [
        Problem(
            "kafka_consumer_app.E040",
            "KAFKA_CONSUMER['BOOTSTRAP_SERVERS'] has an empty, non-string or unprintable entry",
            "List the brokers as 'host:port' strings, e.g. 'kafka-1:9092,kafka-2:9092' or ['kafka-1:9092'].",
        )
    ]


def _group_id_problems(group: Any, where: str, top_level: bool) -> list[Problem]:
    """A GROUP_ID that librdkafka accepts (an empty or blank one aborts its client). Another type: E006."""
    if group is None or (top_level and not isinstance(group, str)) or not group_id_problem(group):
        return []
    hint = (
        "Set the service's consumer group name, or remove GROUP_ID and name a group per topic or with --group-id."
        if top_level
        else "Set the topic's consumer group name, or remove GROUP_ID to use the top-level one."
    )
    return [Problem("kafka_consumer_app.E046", f"{where} {group_id_problem(group)}", hint)]


def _string_problems(value: dict[str, Any]) -> list[Problem]:
    found = []
    for key in ("GROUP_ID", "TOPIC_PREFIX"):
        text = value.get(key)
        if text is not None and not isinstance(text, str):
            found.append(
                Problem(
                    "kafka_consumer_app.E006",
                    f"KAFKA_CONSUMER['{key}'] must be a string, not {type(text).__name__}",
                    f"Set {key} to a string or remove it.",
                )
            )
    return found


def _prefix_problems(prefix: Any) -> list[Problem]:
    if not isinstance(prefix, str) or not prefix or KAFKA_TOPIC_NAME.match(f"{prefix}-x"):
        return []
    return [
        Problem(
            "kafka_consumer_app.E045",
            f"KAFKA_CONSUMER['TOPIC_PREFIX'] {prefix!r} would make illegal Kafka topic names",
            "Use letters, digits, '.', '_' and '-' only (Kafka's rule for topic names).",
        )
    ]


def _options_problems(config: Any, where: str, managed: Mapping[str, str]) -> list[Problem]:
    """One dict of librdkafka options: its type (E007), the options the app manages (E008), their values."""
    if config is None:
        return []
    if not isinstance(config, dict):
        return [
            Problem(
                "kafka_consumer_app.E007",
                f"{where} must be a dict of librdkafka options, not {type(config).__name__}",
                "Use librdkafka property names as keys, e.g. {'security.protocol': 'SASL_SSL'}.",
            )
        ]
    found = [
        Problem(
            "kafka_consumer_app.E008",
            f"{where} sets {option!r}, which kafka_consumer_app manages",
            f"Remove it: {reason}.",
        )
        for option, reason in managed.items()
        if option in config
    ]
    return found + _option_type_problems(config, where) + _security_problems(config, where)


def _option_type_problems(config: dict[str, Any], where: str) -> list[Problem]:
    """E041: names and values librdkafka can take. Never quotes a value: it may be a secret."""
    found = []
    for key, option in config.items():
        if text_problem(key, "an option name"):
            found.append(
                Problem(
                    "kafka_consumer_app.E041",
                    f"{where} has the key {key!r}; librdkafka option names are printable strings",
                    "Use librdkafka property names as keys, e.g. 'security.protocol'.",
                )
            )
        elif librdkafka_value_problem(key, option):
            found.append(
                Problem(
                    "kafka_consumer_app.E041",
                    f"{where}[{key!r}] {librdkafka_value_problem(key, option)}",
                    "librdkafka would receive its Python repr; set a string or number, or remove the option.",
                )
            )
    return found


def _security_problems(config: dict[str, Any], where: str) -> list[Problem]:
    found = []
    protocol = config.get("security.protocol")
    if isinstance(protocol, str) and protocol.upper() not in SECURITY_PROTOCOLS:
        found.append(
            Problem(
                "kafka_consumer_app.E042",
                f"{where}['security.protocol'] is {protocol!r}",
                f"Use one of {', '.join(SECURITY_PROTOCOLS)}.",
            )
        )
    for key in ("sasl.mechanism", "sasl.mechanisms"):
        mechanism = config.get(key)
        if isinstance(mechanism, str) and mechanism not in SASL_MECHANISMS:
            found.append(
                Problem(
                    "kafka_consumer_app.E043",
                    f"{where}[{key!r}] is {mechanism!r}, which librdkafka does not support",
                    f"Use one of {', '.join(SASL_MECHANISMS)} (upper case, as written here).",
                )
            )
    if not valid_max_poll_interval(config):
        found.append(
            Problem(
                "kafka_consumer_app.E048",
                f"{where}['max.poll.interval.ms'] must be a positive number of milliseconds",
                "Set it to an integer such as 300000, or remove it for librdkafka's default (300000).",
            )
        )
    return found


def _credentials_problems(config: Mapping[str, Any], where: str) -> list[Problem]:
    """SASL PLAIN and SCRAM need a username and a password; say so before librdkafka refuses to start."""
    protocol = config.get("security.protocol")
    mechanism = config.get("sasl.mechanism", config.get("sasl.mechanisms"))
    if not (isinstance(protocol, str) and protocol.upper().startswith("SASL_") and mechanism in PASSWORD_MECHANISMS):
        return []
    missing = [key for key in ("sasl.username", "sasl.password") if not config.get(key)]
    if not missing:
        return []
    return [
        Problem(
            "kafka_consumer_app.E044",
            f"{where} uses SASL {mechanism} without {' and '.join(missing)}",
            "Set sasl.username and sasl.password, read from the environment, e.g. os.environ['KAFKA_PASSWORD'].",
        )
    ]
