"""
The Confluent schema registry that Avro messages are decoded with.

Key: SCHEMA_REGISTRY (its own keys in ``SCHEMA_REGISTRY_DOC``). Topics that decode Avro (an
OPENEDX_EVENTS topic, or an 'avro' (key) deserializer) need it. Messages never quote
BASIC_AUTH_USER_INFO, nor the registry's URL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from kafka_consumer_app.settings.base import DocTable, Problem
from kafka_consumer_app.validation import key_list

#: The top-level keys of this subject: (default, description).
SETTINGS: DocTable = {
    "SCHEMA_REGISTRY": (
        None,
        "The Confluent schema registry that Avro messages (DESERIALIZER 'avro', OPENEDX_EVENTS topics) are "
        "decoded with; keys in SCHEMA_REGISTRY_DOC. Its credentials are never logged. Needs the avro extra "
        "(pip install kafka_consumer_app[avro]).",
    ),
}

#: Documentation of the keys of the SCHEMA_REGISTRY dict.
SCHEMA_REGISTRY_DOC: DocTable = {
    "URL": (None, "Required. The registry's URL, without credentials in it, e.g. 'https://schema-registry:8081'."),
    "BASIC_AUTH_USER_INFO": (
        None,
        "'<key>:<secret>' for HTTP basic authentication (e.g. a Confluent Cloud API key); read it from the "
        "environment. Never logged.",
    ),
    "CONFIG": (
        {},
        "More confluent-kafka SchemaRegistryClient options: 'ssl.ca.location', 'timeout', 'max.retries'...",
    ),
}

_WHERE = "KAFKA_CONSUMER['SCHEMA_REGISTRY']"
_HINT = "Write SCHEMA_REGISTRY = {'URL': 'https://schema-registry:8081', 'BASIC_AUTH_USER_INFO': '<key>:<secret>'}."


def decodes_avro(overrides: dict[str, Any]) -> bool:
    """Whether a topic's settings make it decode Avro, and so need the registry."""
    if overrides.get("OPENEDX_EVENTS", False) is True:
        return True
    return "avro" in (overrides.get("DESERIALIZER"), overrides.get("KEY_DESERIALIZER"))


def registry_needed_problems(value: dict[str, Any], avro_topics: Sequence[Any]) -> list[Problem]:
    """E081: the topics that decode Avro (found by the walk over TOPICS), when SCHEMA_REGISTRY is unset."""
    if not avro_topics or value.get("SCHEMA_REGISTRY") is not None:
        return []
    return [
        Problem(
            "kafka_consumer_app.E081",
            f"topic(s) {', '.join(repr(name) for name in avro_topics)} decode Avro, and "
            "KAFKA_CONSUMER['SCHEMA_REGISTRY'] is not set",
            "Set SCHEMA_REGISTRY = {'URL': 'https://schema-registry:8081'} (and BASIC_AUTH_USER_INFO if needed).",
        )
    ]


def problems(value: dict[str, Any]) -> list[Problem]:
    """E080: the SCHEMA_REGISTRY dict itself."""
    registry = value.get("SCHEMA_REGISTRY")
    if registry is None:
        return []
    if not isinstance(registry, dict):
        return [Problem("kafka_consumer_app.E080", f"{_WHERE} must be a dict, not {type(registry).__name__}", _HINT)]
    found = []
    unknown = key_list(set(registry) - set(SCHEMA_REGISTRY_DOC))
    if unknown:
        found.append(
            Problem(
                "kafka_consumer_app.E080",
                f"unknown key(s) in {_WHERE}: {unknown}",
                f"Valid keys are {', '.join(SCHEMA_REGISTRY_DOC)}; other client options go in CONFIG.",
            )
        )
    return found + _url_problems(registry.get("URL")) + _credential_problems(registry)


def _url_problems(url: Any) -> list[Problem]:
    if not (isinstance(url, str) and re.match(r"^(https?|mock)://[^/@\s]+", url)):
        return [Problem("kafka_consumer_app.E080", f"{_WHERE}['URL'] must be an http(s):// URL", _HINT)]
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:
        return [
            Problem(
                "kafka_consumer_app.E080",
                f"{_WHERE}['URL'] has credentials in it, which would end up in logs",
                "Move them to BASIC_AUTH_USER_INFO ('<key>:<secret>') and keep the URL without them.",
            )
        ]
    return []


def _credential_problems(registry: dict[str, Any]) -> list[Problem]:
    found = []
    auth = registry.get("BASIC_AUTH_USER_INFO")
    if auth is not None and not (isinstance(auth, str) and ":" in auth and auth.split(":", 1)[0]):
        found.append(
            Problem(
                "kafka_consumer_app.E080",
                f"{_WHERE}['BASIC_AUTH_USER_INFO'] must be a '<key>:<secret>' string",
                "Read it from the environment, e.g. os.environ['SCHEMA_REGISTRY_AUTH'], or remove it.",
            )
        )
    config = registry.get("CONFIG")
    if config is not None and not isinstance(config, dict):
        found.append(Problem("kafka_consumer_app.E080", f"{_WHERE}['CONFIG'] must be a dict", _HINT))
    elif isinstance(config, dict) and {"url", "basic.auth.user.info"} & set(config):
        found.append(
            Problem(
                "kafka_consumer_app.E080",
                f"{_WHERE}['CONFIG'] sets 'url' or 'basic.auth.user.info'",
                "Set them as URL and BASIC_AUTH_USER_INFO instead.",
            )
        )
    return found
