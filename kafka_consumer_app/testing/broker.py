"""
The local Kafka broker's public names, and its command line, ``python -m kafka_consumer_app.testing.broker``.

:class:`LocalKafkaBroker` itself lives in :mod:`kafka_consumer_app.testing.kraft`; tests and users import it
from here.

``fetch`` fetches Apache Kafka's jars with Maven into the cache (``make kafka``); ``run`` serves a
:class:`LocalKafkaBroker` on 127.0.0.1 until SIGTERM or SIGINT,
printing ``KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:<port>`` (and writing it to ``--ready-file``) once it is
ready. The demo runs it as a process of its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kafka_consumer_app.testing.jars import (
    DEFAULT_KAFKA_VERSION,
    KAFKA_VERSION_ENV,
    BrokerError,
    fetch,
    free_port,
    kafka_version,
    share_groups,
)
from kafka_consumer_app.testing.kraft import LocalKafkaBroker
from kafka_consumer_app.testing.servers import serve_until_stopped

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "KAFKA_VERSION_ENV",
    "BrokerError",
    "LocalKafkaBroker",
    "fetch",
    "free_port",
    "kafka_version",
    "main",
    "share_groups",
]


def _parse_user(text: str) -> tuple[str, str]:
    name, equals, password = text.partition("=")
    if not (name and equals and password):
        raise argparse.ArgumentTypeError(f"expected NAME=PASSWORD, not {text!r}")
    return name, password


def _parse_topic(text: str) -> tuple[str, int]:
    name, _, partitions = text.partition(":")
    return name, int(partitions or 1)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``fetch`` the jars, or ``run`` a broker until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m kafka_consumer_app.testing.broker", description="Fetch Apache Kafka, or run a local broker."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    fetch_parser = sub.add_parser("fetch", help="Fetch Apache Kafka's jars with Maven into the cache.")
    fetch_parser.add_argument(
        "--version",
        help=f"The Apache Kafka release (default: ${KAFKA_VERSION_ENV}, else {DEFAULT_KAFKA_VERSION}).",
    )
    run = sub.add_parser("run", help="Run a broker on 127.0.0.1 until SIGTERM or SIGINT.")
    run.add_argument("--port", type=int, help="Client port (default: a free one).")
    run.add_argument("--topic", action="append", default=[], metavar="NAME[:PARTITIONS]", help="Create this topic.")
    run.add_argument("--ready-file", type=Path, help="Write KAFKA_BOOTSTRAP_SERVERS=... here once ready.")
    run.add_argument(
        "--plain-user",
        action="append",
        default=[],
        type=_parse_user,
        metavar="NAME=PASSWORD",
        help="Add a SASL/PLAIN user (and a SASL_PLAINTEXT listener).",
    )
    run.add_argument(
        "--scram-user",
        action="append",
        default=[],
        type=_parse_user,
        metavar="NAME=PASSWORD",
        help="Add a SCRAM-SHA-512 user (and a SASL_PLAINTEXT listener).",
    )
    run.add_argument("--tls", action="store_true", help="Add a SASL_SSL listener with a self-signed certificate.")
    run.add_argument(
        "--version",
        help=f"The Apache Kafka release to run (default: ${KAFKA_VERSION_ENV}, else {DEFAULT_KAFKA_VERSION}).",
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "fetch":
            release = kafka_version(args.version)
            print(f"Apache Kafka {release} jars are in {fetch(quiet=False, version=release)}")
            return 0
        return _run(args)
    except BrokerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    try:
        broker = LocalKafkaBroker(
            port=args.port,
            plain_users=dict(args.plain_user),
            scram_users=dict(args.scram_user),
            tls=args.tls,
            version=args.version,
        )
    except ValueError as error:
        raise BrokerError(str(error)) from error
    with broker:
        for name, partitions in map(_parse_topic, args.topic):
            broker.create_topic(name, partitions)
        lines = [f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}"]
        if broker.sasl_enabled:
            lines.append(f"KAFKA_SASL_BOOTSTRAP_SERVERS={broker.sasl_bootstrap_servers}")
        if args.tls:
            lines.append(f"KAFKA_SASL_SSL_BOOTSTRAP_SERVERS={broker.sasl_ssl_bootstrap_servers}")
            lines.append(f"KAFKA_SSL_CA_LOCATION={broker.ca_file}")
        return serve_until_stopped(broker, lines, args.ready_file, "broker")


if __name__ == "__main__":
    sys.exit(main())
