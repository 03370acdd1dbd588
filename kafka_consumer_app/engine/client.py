"""
The librdkafka clients: their configuration, the consumer's creation, and what its error callback hears.

Every client the app makes gets its options here, so that they all reach the cluster the same
way: :func:`connection_options` is what a consumer's ``CONSUMER_CONFIG`` says about reaching
and authenticating to the cluster, which the dead-letter producer and the admin client share;
:func:`client_config` is the consumer's (the user's pass-through options plus the managed
ones: offsets stored by the loop, never automatically); :func:`producer_options` and
:func:`admin_options` are the others'. :class:`ClientErrorHandler` is the client's
``error_cb`` and reads the errors that come as messages: credentials and fatal errors are
kept to end the loop, an unreachable cluster is logged at most every
UNREACHABLE_LOG_INTERVAL seconds, and an unknown topic is handed to the deleted-topic watch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException

from kafka_consumer_app.client_errors import ClientErrors, reason
from kafka_consumer_app.exceptions import ConfigurationError, FatalKafkaError
from kafka_consumer_app.redaction import redacted
from kafka_consumer_app.settings.group_protocol import uses_consumer_protocol
from kafka_consumer_app.settings.topics import TopicConfig

logger = logging.getLogger(__name__)
librdkafka_logger = logging.getLogger("kafka_consumer_app.librdkafka")

#: While all brokers are down librdkafka reports an error per reconnect attempt; one line per this many seconds.
UNREACHABLE_LOG_INTERVAL = 30.0

#: Errors that mean the client lost the cluster for a while; librdkafka reconnects on its own.
TRANSIENT_ERRORS = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE})
#: Errors that say the consumed topic may be gone; a metadata check decides.
MISSING_TOPIC_ERRORS = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION}
)


#: Options of ``CONSUMER_CONFIG`` that say how to reach and authenticate to the cluster, by prefix:
#: every client of the same cluster (the dead-letter producer, the admin client) takes them too.
CONNECTION_OPTION_PREFIXES = (
    "security.",
    "sasl.",
    "ssl.",
    "ssl_",
    "socket.",
    "broker.",
    "reconnect.",
    "client.",
    "api.version",
    "enable.ssl.",
    "enable.sasl.",
    "https.",
)
#: The same, by whole name: librdkafka's debug contexts, and the OAUTHBEARER token callback.
CONNECTION_OPTIONS = frozenset({"debug", "oauth_cb"})
#: What the dead-letter producer defaults to: every write confirmed by all in-sync replicas, once.
PRODUCER_DEFAULTS = {"enable.idempotence": True, "acks": "all", "linger.ms": 0, "message.timeout.ms": 30000}


def connection_options(consumer_config: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``consumer_config`` that every client of the same cluster needs: transport and credentials."""
    return {
        key: value
        for key, value in consumer_config.items()
        if key.startswith(CONNECTION_OPTION_PREFIXES) or key in CONNECTION_OPTIONS
    }


def producer_options(config: TopicConfig, error_cb: Callable[[KafkaError], object] | None = None) -> dict[str, Any]:
    """The dead-letter producer's options: the connection's, the producer defaults, then ``PRODUCER_CONFIG``."""
    options = connection_options(config.consumer_config)
    options.update(PRODUCER_DEFAULTS)
    options.update(config.failure.producer_config)
    options.update({"bootstrap.servers": config.bootstrap_servers, "logger": librdkafka_logger})
    if error_cb is not None:
        options["error_cb"] = error_cb
    return options


def admin_options(config: TopicConfig, error_cb: Callable[[KafkaError], object]) -> dict[str, Any]:
    """An admin client's options on ``config``'s cluster: the connection's, the brokers, the callbacks."""
    options = connection_options(config.consumer_config)
    options.update({"bootstrap.servers": config.bootstrap_servers, "error_cb": error_cb, "logger": librdkafka_logger})
    return options


def consumer_options(
    config: TopicConfig, error_cb: Callable[[KafkaError], object], managed: Mapping[str, Any]
) -> dict[str, Any]:
    """A consumer's options: the user's ``CONSUMER_CONFIG``, then what this use of it manages, the brokers and group."""
    options = dict(config.consumer_config)
    options.update(managed)
    options.update(
        {
            "bootstrap.servers": config.bootstrap_servers,
            "group.id": config.group_id,
            "error_cb": error_cb,
            "logger": librdkafka_logger,
        }
    )
    return options


def client_config(
    config: TopicConfig,
    error_cb: Callable[[KafkaError], None],
    stats_cb: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The librdkafka configuration of ``config``'s consumer; ``stats_cb`` enables librdkafka's statistics."""
    # Defaults the user may override: a new group starts at the beginning, and a crash redelivers
    # at most about one second of handled messages (librdkafka's default interval is 5 s).
    settings: dict[str, Any] = {"auto.offset.reset": "earliest", "auto.commit.interval.ms": 1000}
    settings.update(consumer_options(config, error_cb, {"enable.auto.offset.store": False, "enable.auto.commit": True}))
    if not uses_consumer_protocol(settings):
        # The KIP-848 protocol assigns partitions on the broker and refuses this option.
        settings.setdefault("partition.assignment.strategy", "cooperative-sticky")
    if stats_cb is not None:
        settings.setdefault("statistics.interval.ms", 15000)
        settings["stats_cb"] = stats_cb
    return settings


def new_client(settings: dict[str, Any]) -> Consumer:
    """Create the librdkafka consumer; options librdkafka refuses are a configuration error, on one line."""
    try:
        return Consumer(settings)
    except KafkaException as error:
        raise ConfigurationError(
            f"librdkafka refused the configuration ({reason(error)}); fix that option in "
            "KAFKA_CONSUMER['CONSUMER_CONFIG']"
        ) from error


def log_client_config(settings: Mapping[str, Any]) -> None:
    """At DEBUG, the librdkafka configuration with its secrets masked (callbacks and the logger left out)."""
    if logger.isEnabledFor(logging.DEBUG):
        options = {key: value for key, value in redacted(settings).items() if _printable(value)}
        logger.debug("librdkafka configuration (secrets masked): %s", dict(sorted(options.items())))


class ClientErrorHandler:
    """
    The client's ``error_cb``, and the reader of errors the client returns as messages.

    ``on_missing_topic`` is called when librdkafka says the topic or a partition is unknown:
    the deleted-topic watch decides whether it is gone.
    """

    def __init__(self, config: TopicConfig, on_missing_topic: Callable[[KafkaError], None]) -> None:
        self._config = config
        self._on_missing_topic = on_missing_topic
        #: The errors no retry can cure (credentials, fatal), recorded for the loop to raise.
        self.errors = ClientErrors()
        self._unreachable_logged_at = -UNREACHABLE_LOG_INTERVAL
        self._unreachable_count = 0

    def on_error(self, error: KafkaError) -> None:
        """librdkafka's error callback, served from poll(): record fatal errors, log the rest."""
        if self.errors.record(error):
            return
        if error.code() in MISSING_TOPIC_ERRORS:
            self._on_missing_topic(error)
        elif error.code() in TRANSIENT_ERRORS:
            self._log_unreachable(error)
        else:
            logger.warning("Kafka client error (%s); the client retries on its own.", error.str())

    def on_message_error(self, error: KafkaError) -> None:
        """An error the client returned in place of a message: raise if fatal, else log it and poll on."""
        if error.code() in MISSING_TOPIC_ERRORS:
            # Decided by the metadata check, so that a topic briefly missing while created is not fatal.
            self._on_missing_topic(error)
            return
        # A fatal error reaches the loop as a message whose error code is _FATAL, and that error's own
        # fatal() flag is not set: the code is what says the client cannot go on (a fenced member, say).
        if error.fatal() or error.code() == KafkaError._FATAL:
            raise FatalKafkaError(f"fatal Kafka error: {error.str()}; the process exits for a restart")
        logger.warning("Kafka reported %s while consuming %s; polling goes on.", error.str(), self._config.kafka_topic)

    def raise_if_fatal(self) -> None:
        """Raise the recorded error that ends the client (rejected credentials, a fatal error), if any."""
        self.errors.raise_if_fatal()

    def _log_unreachable(self, error: KafkaError) -> None:
        """Say that Kafka is unreachable at most every UNREACHABLE_LOG_INTERVAL seconds, with a count."""
        now = time.monotonic()
        self._unreachable_count += 1
        if now - self._unreachable_logged_at < UNREACHABLE_LOG_INTERVAL:
            return
        logger.warning(
            "Kafka is unreachable for now (%s; %d error(s) since the last such line); librdkafka keeps reconnecting.",
            error.str(),
            self._unreachable_count,
        )
        self._unreachable_logged_at, self._unreachable_count = now, 0


def _printable(value: Any) -> bool:
    """Whether a librdkafka option's value is plain data (not a callback or a logger) worth logging."""
    return isinstance(value, (str, int, float, bool))
