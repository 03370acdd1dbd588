"""
Keeping credentials out of output: redacted copies of configurations, and a log filter.

Everything that prints a configuration passes it through :func:`redacted` first, which
replaces the value of every secret-looking key (``sasl.password``, ``ssl.key.password``,
``sasl.oauthbearer.config``, ``sasl.oauthbearer.client.secret``...) with ``***``::

    >>> redacted({"sasl.username": "alice", "sasl.password": "s3cret"})
    {'sasl.username': 'alice', 'sasl.password': '***'}

librdkafka's own log lines reach the ``kafka_consumer_app.librdkafka`` logger. librdkafka
already masks sensitive properties in them, but :class:`RedactingFilter`, installed on that
logger (and on the consumer's, which logs librdkafka's error strings) when the app is
ready, also replaces every secret value of the current ``KAFKA_CONSUMER`` settings that
appears in a line, whatever the debug level: a defence that does not depend on
librdkafka's version or on which debug contexts are enabled.

This module reads ``django.conf.settings`` directly (not the :mod:`kafka_consumer_app.settings` modules),
so that they can use it without an import cycle.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings

#: What replaces a secret.
MASK = "***"
#: A key whose lower-cased name contains one of these holds a secret.
SECRET_KEY_PARTS = (
    "password",
    "secret",
    "token",
    "credential",
    "private",
    "jaas",
    "ssl.key",
    "ssl_key",
    "sasl.oauthbearer.config",
    "basic.auth",
    "basic_auth",
)
#: Loggers whose lines may quote librdkafka: its log lines and its error strings.
PROTECTED_LOGGERS = (
    "kafka_consumer_app.librdkafka",
    "kafka_consumer_app.engine.consumer",
    "kafka_consumer_app.engine.client",
    "kafka_consumer_app.engine.topic_watch",
    "kafka_consumer_app.engine.commits",
    "kafka_consumer_app.engine.rebalance",
    "kafka_consumer_app.engine.retries",
    "kafka_consumer_app.engine.outcomes",
)
#: Secret values shorter than this are not searched for in log lines (they would mask ordinary words).
MIN_SECRET_LENGTH = 4

#: ``password=...``, ``sasl.password: ...`` and the like, in free text.
_SECRET_ASSIGNMENT = re.compile(
    r"(?P<key>[\w.]*(?:password|secret|token)[\w.]*)(?P<sep>\s*[=:]\s*)(?P<value>\"[^\"]*\"|'[^']*'|\[[^\]]*\]|[^\s,;)\]}]+)",
    re.IGNORECASE,
)


def is_secret_key(key: Any) -> bool:
    """Whether the value of configuration key ``key`` is a secret that must never be printed."""
    name = str(key).lower()
    return any(part in name for part in SECRET_KEY_PARTS)


def redacted(config: Mapping[str, Any]) -> dict[str, Any]:
    """
    Return a copy of ``config`` with the value of every secret key replaced by ``***``.

    Nested mappings (``TOPICS``, a topic's ``CONSUMER_CONFIG``) are redacted too, so the
    whole ``KAFKA_CONSUMER`` dict can be passed. The input is not modified.
    """
    result: dict[str, Any] = {}
    for key, value in config.items():
        if is_secret_key(key) and value is not None:
            result[key] = MASK
        elif isinstance(value, Mapping):
            result[key] = redacted(value)
        else:
            result[key] = value
    return result


def secret_values(config: Any = None) -> set[str]:
    """
    The secret values found in ``config`` (by default the current ``KAFKA_CONSUMER`` setting).

    Every value under a secret key, at any depth, as a string; values shorter than
    :data:`MIN_SECRET_LENGTH` are left out.
    """
    if config is None:
        config = getattr(settings, "KAFKA_CONSUMER", None)
    found: set[str] = set()
    _collect_secrets(config, found)
    return {value for value in found if len(value) >= MIN_SECRET_LENGTH}


def _collect_secrets(config: Any, found: set[str]) -> None:
    if not isinstance(config, Mapping):
        return
    for key, value in config.items():
        if isinstance(value, Mapping):
            _collect_secrets(value, found)
        elif is_secret_key(key) and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            found.add(str(value))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask every occurrence of ``secrets`` in ``text``, and the value of any ``password=...``-like pair."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return _SECRET_ASSIGNMENT.sub(_mask_assignment, text)


def _mask_assignment(match: re.Match[str]) -> str:
    value = match.group("value")
    if value.strip("'\"") in (MASK, "[redacted]", ""):
        return match.group(0)
    return f"{match.group('key')}{match.group('sep')}{MASK}"


class RedactingFilter(logging.Filter):
    """
    A logging filter that masks secrets in every record it sees; it never drops a record.

    The secrets are those of the ``KAFKA_CONSUMER`` setting at the time of the record (see
    :func:`secret_values`), plus anything shaped like ``password=...``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with its secrets masked; always keep the record."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's business, not ours
            return True
        clean = redact_text(message, secret_values())
        if clean != message:
            record.msg = clean
            record.args = ()
        return True


#: The one filter instance, so that installing it twice is harmless.
REDACTING_FILTER = RedactingFilter()


def protect_loggers(names: Iterable[str] = PROTECTED_LOGGERS) -> None:
    """Install :data:`REDACTING_FILTER` on the named loggers (once each)."""
    for name in names:
        logger = logging.getLogger(name)
        if REDACTING_FILTER not in logger.filters:
            logger.addFilter(REDACTING_FILTER)


#: How much of a payload the console shows to a user without the payload permission, in characters.
PAYLOAD_PREVIEW_LIMIT = 2000


def masked_payload(value: bytes | None, limit: int = PAYLOAD_PREVIEW_LIMIT) -> tuple[str, bool]:
    """
    A payload fit for any operator (it may hold personal data) and whether it was cut at ``limit``.

    A JSON payload keeps its structure and keys, every value shown as ``***``; any other payload
    shows only its size. Secrets of the settings are masked in what remains.
    """
    if value is None:
        return "(no value: a tombstone)", False
    try:
        text = json.dumps(_mask_values(json.loads(value)), indent=2, sort_keys=True)
    except ValueError:
        text = f"({len(value)} bytes, not JSON: hidden)"
    text = redact_text(text, secret_values())
    return text[:limit], len(text) > limit


def whole_payload(value: bytes | None) -> str:
    """The whole payload as text (JSON indented), for a user allowed to see it."""
    if value is None:
        return "(no value: a tombstone)"
    try:
        return json.dumps(json.loads(value), indent=2, sort_keys=True, ensure_ascii=False)
    except ValueError:
        return value.decode("utf-8", "replace")


def _mask_values(data: Any) -> Any:
    if isinstance(data, dict):
        return {str(key): _mask_values(item) for key, item in data.items()}
    if isinstance(data, list):
        return [_mask_values(item) for item in data]
    return None if data is None else MASK
