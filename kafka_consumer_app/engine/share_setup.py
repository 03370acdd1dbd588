"""
What a share group needs before its first poll: the experimental warning, and where a new group starts.

A new consumer group of this app starts at the beginning of its topic (``auto.offset.reset`` earliest);
a share group's start is not a client option but the group's config ``share.auto.offset.reset``, whose
Kafka default is ``latest``. :func:`start_from_earliest` sets it to ``earliest`` when the group has no
value of its own, so that both kinds of group read a topic the same way; a value an operator set
(``kafka-configs --entity-type groups``) is kept.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

# The package re-exports these without __all__.
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.admin._resource import ResourceType

from kafka_consumer_app.settings.topics import TopicConfig

logger = logging.getLogger(__name__)

#: The group config that says where a new share group starts.
OFFSET_RESET = "share.auto.offset.reset"
#: Seconds each admin request may take.
ADMIN_TIMEOUT = 10.0

#: The startup warning, with the topic and the group.
EXPERIMENTAL_WARNING = (
    "Consuming topic %s through share group %s is experimental: confluent-kafka's ShareConsumer is a preview "
    "API and may change or misbehave; use a consumer group (no --share-group / SHARE_GROUP) in production."
)


def start_from_earliest(admin: AdminClient, config: TopicConfig) -> None:
    """Set the group's ``share.auto.offset.reset`` to ``earliest`` unless it has a value of its own."""
    group = ConfigResource(ResourceType.GROUP, config.group_id)
    try:
        described = admin.describe_configs([group], request_timeout=ADMIN_TIMEOUT)[group].result(ADMIN_TIMEOUT)
        entry = described.get(OFFSET_RESET)
        if entry is not None and not entry.is_default:
            return
        change = ConfigResource(
            ResourceType.GROUP,
            config.group_id,
            incremental_configs=[ConfigEntry(OFFSET_RESET, "earliest", incremental_operation=AlterConfigOpType.SET)],
        )
        admin.incremental_alter_configs([change], request_timeout=ADMIN_TIMEOUT)[change].result(ADMIN_TIMEOUT)
    except KafkaException as error:
        logger.warning(
            "Could not set %s=earliest on share group %s (%s); if the group is new it starts at the end of "
            "topic %s. Set it with kafka-configs --entity-type groups --entity-name %s --alter "
            "--add-config %s=earliest.",
            OFFSET_RESET,
            config.group_id,
            error,
            config.kafka_topic,
            config.group_id,
            OFFSET_RESET,
        )
        return
    logger.info(
        "Share group %s starts at the beginning of topic %s (%s=earliest).",
        config.group_id,
        config.kafka_topic,
        OFFSET_RESET,
    )
