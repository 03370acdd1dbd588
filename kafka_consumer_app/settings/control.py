"""
The operator console's control channel: how often a consumer reads its topic's control row.

Key, at the top level only (the rows are in the service's database, shared by every topic of a
process): CONTROL_INTERVAL. See docs/decisions/0011-pausing-from-the-admin.rst.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kafka_consumer_app.settings.base import DocTable, Problem
from kafka_consumer_app.validation import seconds_problem

#: The keys of this subject: (default, description).
SETTINGS: DocTable = {
    "CONTROL_INTERVAL": (
        5.0,
        "Seconds between two reads of the topic's control row (the admin console's Pause and Resume): a pause "
        "stops fetching within CONTROL_INTERVAL + POLL_TIMEOUT, once the messages in hand are finished. A row that "
        "cannot be read keeps the last state, with one warning.",
    ),
}


@dataclass(frozen=True)
class ControlConfig:
    """How the consumer hears the operator console."""

    #: Seconds between two reads of the control row.
    interval: float = 5.0


def control_config(top: dict[str, Any]) -> ControlConfig:
    """Resolve the keys of this subject (checked already)."""
    interval: Any = top.get("CONTROL_INTERVAL", SETTINGS["CONTROL_INTERVAL"][0])
    return ControlConfig(interval=float(interval))


def problems(value: dict[str, Any]) -> list[Problem]:
    """E092: CONTROL_INTERVAL, a positive number of seconds."""
    if "CONTROL_INTERVAL" not in value:
        return []
    problem = seconds_problem(value["CONTROL_INTERVAL"])
    if not problem:
        return []
    return [
        Problem(
            "kafka_consumer_app.E092",
            f"KAFKA_CONSUMER['CONTROL_INTERVAL'] {problem}",
            "Remove CONTROL_INTERVAL for the default of 5s, or set a positive number of seconds.",
        )
    ]
