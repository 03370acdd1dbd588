"""
The consumed topic's existence: waiting for it at startup, and noticing when it is deleted.

librdkafka notices a deleted topic only on a metadata refresh (every 5 minutes by default)
and then goes on polling nothing, so :class:`TopicWatch` asks for the topic's metadata every
TOPIC_CHECK_INTERVAL. A first "unknown topic" answer fails readiness; a second one
DELETION_CONFIRM_DELAY later ends the consumer with :class:`TopicNotFoundError`, after
committing what was handled if the broker still takes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException

from kafka_consumer_app.client_errors import ClientErrors, reason, wait_for_metadata, without_secrets
from kafka_consumer_app.exceptions import AuthenticationError, TopicNotFoundError
from kafka_consumer_app.settings.topics import TopicConfig

logger = logging.getLogger(__name__)

#: librdkafka notices a deleted topic only on a metadata refresh (topic.metadata.refresh.interval.ms,
#: 5 min), so the loop asks for the topic's metadata itself this often: one small request.
TOPIC_CHECK_INTERVAL = 10.0
#: A first "unknown topic" answer fails readiness; a second one this much later confirms the deletion,
#: so a topic briefly missing from one broker's metadata (while it is being created) is not taken for it.
DELETION_CONFIRM_DELAY = 5.0
#: The longest a topic check may hold up the loop when no broker answers (then nothing is concluded).
TOPIC_CHECK_TIMEOUT = 2.0


class TopicWatch:
    """Startup's wait for the topic, and the periodic check that it still exists."""

    def __init__(self, config: TopicConfig, emit: Callable[..., None]) -> None:
        self._config = config
        self._emit = emit
        self._check_at = time.monotonic() + TOPIC_CHECK_INTERVAL
        self._missing_since: float | None = None  # when a broker first said the topic does not exist

    def wait_for_topic(self, client: Consumer, errors: ClientErrors, stopped: Callable[[], bool]) -> None:
        """Fetch the topic's metadata within CONNECT_TIMEOUT; fail clearly if it cannot be had."""
        config = self._config
        metadata = wait_for_metadata(
            client, config.kafka_topic, config.bootstrap_servers, config.connect_timeout, errors, stopped
        )
        if metadata is not None:
            self._check_metadata(metadata)

    def check_soon(self, error: KafkaError) -> None:
        """librdkafka says the topic or a partition is unknown: let the next loop turn check the topic's metadata."""
        if self._missing_since is None:
            self._check_at = min(self._check_at, time.monotonic())
        logger.info(
            "Kafka reported %s for topic %s (group %s); checking whether the topic still exists.",
            without_secrets(error.str()),
            self._config.kafka_topic,
            self._config.group_id,
        )

    def check_still_exists(self, client: Consumer) -> None:
        """Every TOPIC_CHECK_INTERVAL, ask a broker whether the topic still exists; exit once it confirms not."""
        now = time.monotonic()
        if now < self._check_at:
            return
        self._check_at = now + TOPIC_CHECK_INTERVAL
        try:
            metadata = client.list_topics(self._config.kafka_topic, timeout=TOPIC_CHECK_TIMEOUT)
        except KafkaException:
            return  # no broker answered: an outage is not a deletion, and librdkafka reports it already
        topic = metadata.topics.get(self._config.kafka_topic)
        error = topic.error if topic is not None else None
        if topic is not None and error is None:
            self._found_again()
        elif error is None or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:  # no error here: no topic either
            self._unknown(client, now)

    def _unknown(self, client: Consumer, now: float) -> None:
        config = self._config
        if self._missing_since is None:
            self._missing_since = now
            self._check_at = now + DELETION_CONFIRM_DELAY
            self._emit("after_topic_missing", True)
            logger.warning(
                "Kafka says topic %s (group %s) does not exist; readiness fails, and the consumer exits if it "
                "still does not exist in %.0fs.",
                config.kafka_topic,
                config.group_id,
                DELETION_CONFIRM_DELAY,
            )
            return
        if now - self._missing_since < DELETION_CONFIRM_DELAY:
            return
        self._commit_handled_before_exit(client)
        raise TopicNotFoundError(
            f"topic {config.kafka_topic!r} was deleted from {config.bootstrap_servers} while group "
            f"{config.group_id} consumed it; recreate the topic (or remove this consumer), then restart"
        )

    def _found_again(self) -> None:
        if self._missing_since is None:
            return
        self._missing_since = None
        self._emit("after_topic_missing", False)
        logger.info(
            "Topic %s exists after all (group %s); consuming goes on.", self._config.kafka_topic, self._config.group_id
        )

    def _commit_handled_before_exit(self, client: Consumer) -> None:
        """Commit stored (handled) offsets if the broker still takes them; after a deletion it usually does not."""
        try:
            client.commit(asynchronous=False)
        except KafkaException as error:
            logger.info(
                "Could not commit the last handled offsets of deleted topic %s (group %s): %s; exiting.",
                self._config.kafka_topic,
                self._config.group_id,
                reason(error),
            )

    def _check_metadata(self, metadata: Any) -> None:
        config = self._config
        topic = metadata.topics.get(config.kafka_topic)
        error = topic.error if topic is not None else None
        if topic is None or (error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            raise TopicNotFoundError(
                f"topic {config.kafka_topic!r} does not exist on {config.bootstrap_servers}; "
                "create it, or check --topic and KAFKA_CONSUMER['TOPIC_PREFIX']"
            )
        if error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            raise AuthenticationError(
                f"not authorized to read topic {config.kafka_topic!r}; grant the consumer's principal "
                "READ on the topic and the group"
            )


def check_dead_letter_topic(client: Consumer, topic: str) -> None:
    """Warn at startup when the dead-letter topic is missing: parking would then stop the consumer."""
    try:
        metadata = client.list_topics(topic, timeout=5)
    except KafkaException:
        return
    found = metadata.topics.get(topic)
    if found is None or (found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        logger.warning(
            "Dead-letter topic %s does not exist: a message that fails its last attempt will stop this "
            "consumer (exit 3, nothing committed) until the topic is created.",
            topic,
        )
