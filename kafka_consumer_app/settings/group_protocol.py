"""
The consumer group protocol: librdkafka's ``group.protocol`` in CONSUMER_CONFIG, and what each protocol refuses.

No key of its own: ``group.protocol`` is a librdkafka option, passed through verbatim like the
others. ``classic`` (librdkafka's default) is the JoinGroup/SyncGroup protocol, with the app's
``cooperative-sticky`` assignment; ``consumer`` is KIP-848's, where the broker assigns
partitions and owns the session: librdkafka then refuses ``session.timeout.ms``,
``heartbeat.interval.ms``, ``partition.assignment.strategy`` and ``group.protocol.type`` at
startup, and ``group.remote.assignor`` (the broker's assignor to use) means nothing under
``classic``. The checks say so before a pod crash-loops on it, on the top-level
CONSUMER_CONFIG and on each topic's merged over it:

- E110: ``group.protocol`` is neither ``classic`` nor ``consumer`` (any case, as librdkafka reads it);
- E111: an option the ``consumer`` protocol refuses;
- E112: ``group.remote.assignor`` without the ``consumer`` protocol.

See docs/decisions/0013-group-protocols.rst.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kafka_consumer_app.settings.base import Problem, topic_where
from kafka_consumer_app.settings.connection import consumer_config

#: librdkafka's values of group.protocol.
GROUP_PROTOCOLS = ("classic", "consumer")
#: The options librdkafka refuses with ``group.protocol=consumer``, and what takes their place.
CLASSIC_ONLY_OPTIONS: dict[str, str] = {
    "session.timeout.ms": "the broker's group.consumer.session.timeout.ms (or the group's consumer.session.timeout.ms)",
    "heartbeat.interval.ms": (
        "the broker's group.consumer.heartbeat.interval.ms (or the group's consumer.heartbeat.interval.ms)"
    ),
    "partition.assignment.strategy": "group.remote.assignor (e.g. 'uniform' or 'range'), or nothing for the broker's",
    "group.protocol.type": "nothing: the consumer protocol has no protocol type",
}
_TOP_CONFIG = "KAFKA_CONSUMER['CONSUMER_CONFIG']"


def uses_consumer_protocol(config: Mapping[str, Any]) -> bool:
    """Whether librdkafka options ``config`` choose KIP-848's ``consumer`` group protocol."""
    protocol = config.get("group.protocol")
    return isinstance(protocol, str) and protocol.lower() == "consumer"


def problems(value: dict[str, Any]) -> list[Problem]:
    """The top-level CONSUMER_CONFIG's group protocol and the options it refuses."""
    config = value.get("CONSUMER_CONFIG")
    if not isinstance(config, dict):
        return []  # not a dict: E007
    return _protocol_problems(config, set(config), _TOP_CONFIG)


def topic_problems(top: dict[str, Any], name: Any, overrides: dict[str, Any]) -> list[Problem]:
    """A topic's CONSUMER_CONFIG merged over the top level: the problems its own options bring."""
    own = overrides.get("CONSUMER_CONFIG")
    if not isinstance(own, dict) or not own:
        return []
    return _protocol_problems(consumer_config(top, overrides), set(own), f"{topic_where(name)}['CONSUMER_CONFIG']")


def _protocol_problems(config: Mapping[str, Any], own: set[str], where: str) -> list[Problem]:
    """``own``: the options set at this level; a problem is reported where one of its options is set."""
    protocol = config.get("group.protocol")
    if protocol is not None and not (isinstance(protocol, str) and protocol.lower() in GROUP_PROTOCOLS):
        if "group.protocol" not in own:
            return []
        return [
            Problem(
                "kafka_consumer_app.E110",
                f"{where}['group.protocol'] is {protocol!r}, which librdkafka does not know",
                "Use 'consumer' (KIP-848, brokers 4.0 and later) or 'classic' (the default), or remove it.",
            )
        ]
    if uses_consumer_protocol(config):
        return [
            Problem(
                "kafka_consumer_app.E111",
                f"{where} sets {option!r}, which librdkafka refuses with group.protocol 'consumer'",
                f"Remove it; under the consumer protocol it is {replacement}.",
            )
            for option, replacement in CLASSIC_ONLY_OPTIONS.items()
            if option in config and (option in own or "group.protocol" in own)
        ]
    if "group.remote.assignor" in config and ("group.remote.assignor" in own or "group.protocol" in own):
        return [
            Problem(
                "kafka_consumer_app.E112",
                f"{where} sets 'group.remote.assignor', which only the consumer group protocol uses",
                "Set 'group.protocol': 'consumer' as well, or remove group.remote.assignor.",
            )
        ]
    return []
