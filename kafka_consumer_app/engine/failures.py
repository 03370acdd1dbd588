"""
The former home of retries and dead letters, kept only for the dead-letter names operations import.

Retries now live in :mod:`kafka_consumer_app.engine.retries`, the failure policy in
:mod:`kafka_consumer_app.engine.policy` and dead letters in
:mod:`kafka_consumer_app.engine.dead_letters`; import from those. This module goes once
``operations/replay.py`` and ``operations/status.py`` import from ``dead_letters``.
"""

from __future__ import annotations

from kafka_consumer_app.engine.dead_letters import (
    CONNECTION_OPTION_PREFIXES,
    HEADER_EXCEPTION_CLASS,
    HEADER_PREFIX,
    HEADER_REASON,
    HEADER_TOPIC,
    producer_config,
)

__all__ = [
    "CONNECTION_OPTION_PREFIXES",
    "HEADER_EXCEPTION_CLASS",
    "HEADER_PREFIX",
    "HEADER_REASON",
    "HEADER_TOPIC",
    "producer_config",
]
