"""
Health: the heartbeat file of the liveness probe and the HTTP server of /healthz, /readyz and /metrics.

Keys: HEARTBEAT_FILE, HEARTBEAT_MAX_AGE, HEALTH_PORT and HEALTH_HOST. Also the bind probe that
``manage.py check --deploy`` runs and the line the health server fails with when it cannot bind.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import Any

from kafka_consumer_app.heartbeat import default_heartbeat_file
from kafka_consumer_app.settings.base import DocTable, Problem, raw_settings, seconds_setting_problems
from kafka_consumer_app.validation import path_problem, text_problem, valid_port

#: The top-level keys of this subject: (default, description).
SETTINGS: DocTable = {
    "HEARTBEAT_FILE": (
        None,
        "File touched after every poll, empty polls included (at most once a second), for the liveness probe. Default: "
        "'<tmp>/kafka-consumer-<topic>.heartbeat'. False disables it.",
    ),
    "HEARTBEAT_MAX_AGE": (
        60.0,
        "Seconds without a poll after which the loop counts as stalled (liveness probe, /healthz).",
    ),
    "HEALTH_PORT": (
        None,
        "Port of the HTTP server of /healthz, /readyz and /metrics, run while the loop runs. None (the "
        "default) turns it off; consume_events --health-port overrides it.",
    ),
    "HEALTH_HOST": (
        "0.0.0.0",
        "Address the health server binds: '0.0.0.0' (every IPv4 interface, for Kubernetes probes and "
        "Prometheus), '127.0.0.1', '::', or a host name.",
    ),
}


@dataclass(frozen=True)
class HealthConfig:
    """Where the loop reports that it is alive, how stale is too stale, and where probes and metrics are served."""

    heartbeat_file: str | None = None
    max_age: float = 60.0
    #: The health server's port; None when it is off.
    port: int | None = None
    host: str = "0.0.0.0"


def max_age(top: dict[str, Any]) -> float:
    """HEARTBEAT_MAX_AGE, or its default."""
    value: Any = top.get("HEARTBEAT_MAX_AGE", SETTINGS["HEARTBEAT_MAX_AGE"][0])  # checked by E005
    return float(value)


def health_config(top: dict[str, Any], topic: str) -> HealthConfig:
    """Resolve the health settings of the consumer of ``topic`` (its default heartbeat file is per topic)."""
    heartbeat = top.get("HEARTBEAT_FILE")
    if heartbeat is None:
        heartbeat = default_heartbeat_file(topic)
    return HealthConfig(
        heartbeat_file=heartbeat or None,
        max_age=max_age(top),
        port=top.get("HEALTH_PORT") or None,
        host=top.get("HEALTH_HOST") or SETTINGS["HEALTH_HOST"][0],
    )


def problems(value: dict[str, Any]) -> list[Problem]:
    """The keys of this subject (not the bind probe: see :func:`health_port_problems`)."""
    found = seconds_setting_problems(value, SETTINGS, ("HEARTBEAT_MAX_AGE",))
    heartbeat = value.get("HEARTBEAT_FILE")
    if heartbeat is not None and heartbeat is not False and path_problem(heartbeat):
        found.append(
            Problem(
                "kafka_consumer_app.E019",
                f"KAFKA_CONSUMER['HEARTBEAT_FILE'] must be a file path or False, not {heartbeat!r}",
                "Remove it for the default under the temporary directory, or set False to disable the heartbeat.",
            )
        )
    port = value.get("HEALTH_PORT")
    if port is not None and not valid_port(port):
        found.append(
            Problem(
                "kafka_consumer_app.E020",
                f"KAFKA_CONSUMER['HEALTH_PORT'] must be a port number from 1 to 65535 or None, not {port!r}",
                "Set the port of /healthz, /readyz and /metrics, e.g. 9100, or None to turn the health server off.",
            )
        )
    host = value.get("HEALTH_HOST")
    if host is not None and (text_problem(host, "an address") or len(host) > 253 or not host.isascii()):
        found.append(
            Problem(
                "kafka_consumer_app.E021",
                f"KAFKA_CONSUMER['HEALTH_HOST'] must be an address or host name, not {host!r}",
                "Remove it to bind every interface ('0.0.0.0'), or set e.g. '127.0.0.1' or '::'.",
            )
        )
    return found


def describe_bind_error(host: str, port: int, error: OSError) -> str:
    """One line saying why the health server cannot bind ``host:port``, and what to do."""
    where = f"{host}:{port}"
    fix = "choose another port with --health-port or KAFKA_CONSUMER['HEALTH_PORT']"
    if error.errno == errno.EADDRINUSE:
        return f"cannot serve /healthz, /readyz and /metrics: port {port} ({where}) is already in use; {fix}"
    if error.errno == errno.EACCES:
        return (
            f"cannot serve /healthz, /readyz and /metrics on {where}: permission denied "
            f"(ports below 1024 need privileges); {fix}"
        )
    return (
        f"cannot serve /healthz, /readyz and /metrics on {where} ({error.strerror or error}); check "
        f"KAFKA_CONSUMER['HEALTH_HOST'] or {fix}"
    )


def bind_error(host: str, port: int) -> OSError | None:
    """Try to bind ``host:port`` as the health server would (then release it); return the error, or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As http.server does: a port left in TIME_WAIT by a previous run is free, one with a listener is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        return error
    return None


def health_port_problems() -> list[Problem]:
    """
    The deployment check of the health server: can ``HEALTH_HOST:HEALTH_PORT`` be bound here, now?

    It binds the port and releases it at once. Registered as a deployment check
    (``manage.py check --deploy``), not a default one: on a machine where the consumer is
    already running, its own server holds the port, and ``migrate`` or ``runserver`` must not
    fail for that. ``--health-port`` is not seen by checks; ``consume_events`` fails the same
    way at startup, with the same line, for whichever port it is given.
    """
    value = raw_settings()
    port: Any = value.get("HEALTH_PORT")  # an int once valid_port() accepts it
    host = value.get("HEALTH_HOST") or SETTINGS["HEALTH_HOST"][0]
    if not valid_port(port) or not isinstance(host, str):
        return []
    error = bind_error(host, port)
    if error is None:
        return []
    return [
        Problem(
            "kafka_consumer_app.E022",
            describe_bind_error(host, port, error),
            "Stop the process holding the port (see `ss -ltnp`), or set another KAFKA_CONSUMER['HEALTH_PORT'].",
        )
    ]
