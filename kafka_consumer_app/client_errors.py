"""
Failing fast when Kafka will not have this client: one mechanism for every command.

librdkafka retries a rejected password or an unverifiable certificate forever, so a plain
``list_topics(timeout=30)`` waits the whole timeout and then looks like an unreachable
cluster. :class:`ClientErrors` is the ``error_cb`` of a consumer, producer or admin client:
it records the errors that make waiting pointless (``_AUTHENTICATION``, a TLS handshake
failure, any fatal error). :func:`wait_for_metadata` asks for a topic's metadata in short
slices, serving the callback between them, so such an error ends the wait within seconds,
as one line naming the cause and the settings to fix; only silence until the deadline is
reported as an unreachable cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin._metadata import ClusterMetadata  # the package re-exports it without __all__

from kafka_consumer_app.exceptions import (
    AuthenticationError,
    BrokerUnavailableError,
    FatalKafkaError,
    KafkaConsumerAppError,
)
from kafka_consumer_app.redaction import redact_text, secret_values

#: The longest single metadata request while waiting: error_cb is served between two of them.
WAIT_SLICE = 2.0


class ClientErrors:
    """
    A librdkafka ``error_cb`` that keeps the errors no retry can cure.

    Pass :meth:`record` (or a callback that calls it) as ``error_cb``; it runs on the thread
    that calls ``poll()``. Messages have the settings' secrets masked.
    """

    def __init__(self, settings_hint: str = "KAFKA_CONSUMER['CONSUMER_CONFIG']") -> None:
        #: Where the connection options live, named in the one-line errors.
        self.settings_hint = settings_hint
        self.authentication: str | None = None
        self.tls: str | None = None
        self.fatal: str | None = None

    def record(self, error: KafkaError) -> bool:
        """Keep ``error`` if it is one of those; return True if it ends the client (credentials, fatal)."""
        if error.code() == KafkaError._SSL:
            # Not final by itself: once connected, a TLS error is a broken connection that is retried.
            self.tls = without_secrets(error.str())
        if error.code() == KafkaError._AUTHENTICATION:
            self.authentication = without_secrets(error.str())
            return True
        if error.fatal():
            self.fatal = without_secrets(error.str())
            return True
        return False

    def fatal_error(self) -> KafkaConsumerAppError | None:
        """The error that ends the client whenever it happens: rejected credentials or a fatal error."""
        if self.authentication is not None:
            return AuthenticationError(
                f"Kafka rejected the credentials ({self.authentication}); check the sasl.* and ssl.* options "
                f"in {self.settings_hint}"
            )
        if self.fatal is not None:
            return FatalKafkaError(
                f"fatal Kafka error: {self.fatal}; the client cannot recover, so the process exits for a restart"
            )
        return None

    def raise_if_fatal(self) -> None:
        """Raise :meth:`fatal_error` if there is one."""
        error = self.fatal_error()
        if error is not None:
            raise error

    def raise_if_rejected(self) -> None:
        """While connecting: raise for rejected credentials, a fatal error or a failed TLS handshake."""
        self.raise_if_fatal()
        if self.tls is not None:
            # A certificate that cannot be verified will not verify on the next try either.
            raise AuthenticationError(
                f"the TLS handshake with Kafka failed ({self.tls}); check security.protocol and the ssl.* options "
                f"(ssl.ca.location) in {self.settings_hint}"
            )


def wait_for_metadata(
    client: Any,
    topic: str,
    servers: str,
    timeout: float,
    errors: ClientErrors,
    stopped: Callable[[], bool] = lambda: False,
) -> ClusterMetadata | None:
    """
    The metadata of ``topic`` from ``client`` (a Consumer, Producer or AdminClient) within ``timeout`` seconds.

    Raises :class:`AuthenticationError` or :class:`FatalKafkaError` as soon as ``errors``
    recorded a reason not to wait, :class:`BrokerUnavailableError` at the deadline; returns
    None if ``stopped()`` turned true meanwhile. The topic itself may be missing from the answer.
    """
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while not stopped():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerUnavailableError(
                f"could not reach Kafka at {servers} within {timeout:g}s ({last_error}); check "
                "KAFKA_CONSUMER['BOOTSTRAP_SERVERS'], the network and the security settings"
            )
        try:
            metadata: ClusterMetadata = client.list_topics(topic, timeout=min(remaining, WAIT_SLICE))
            return metadata
        except KafkaException as error:
            last_error = reason(error)
            client.poll(0.1)  # serve error_cb, which reports rejected credentials and TLS failures
            errors.raise_if_rejected()
    return None


def metadata_within(client: Any, topic: str, servers: str, timeout: float, errors: ClientErrors) -> ClusterMetadata:
    """:func:`wait_for_metadata` for a command that no stop request ends early: the metadata, or an error."""
    metadata = wait_for_metadata(client, topic, servers, timeout, errors)
    assert metadata is not None  # only a stop request returns None, and this wait has none
    return metadata


def reason(error: KafkaException) -> str:
    """The text of a KafkaException's KafkaError, secrets masked."""
    first = error.args[0] if error.args else None
    return without_secrets(first.str() if isinstance(first, KafkaError) else str(error))


def without_secrets(text: str) -> str:
    """``text`` (a librdkafka error string) on one line, with any secret of the settings masked."""
    # librdkafka ends some reasons with a newline ("... outside allowed range 1..3600000\n"): keep the line one.
    return " ".join(redact_text(text, secret_values()).split())
