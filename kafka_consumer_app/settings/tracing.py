"""
Tracing: whether the consumer records OpenTelemetry spans, and the check that it can.

Key, at the top level only (a process has one tracer provider, which the service configures):
TRACING. Off by default; ``"opentelemetry"`` needs the ``otel`` extra (opentelemetry-api). See
docs/decisions/0016-opentelemetry-tracing.rst.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from kafka_consumer_app.settings.base import DocTable, Problem

#: The one tracing backend there is.
OPENTELEMETRY = "opentelemetry"
#: The module the tracing observer needs; the otel extra installs it.
OPENTELEMETRY_MODULE = "opentelemetry.trace"
#: The line that installs it.
OTEL_INSTALL = "pip install 'kafka_consumer_app[otel]'"

#: The keys of this subject: (default, description).
SETTINGS: DocTable = {
    "TRACING": (
        None,
        "'opentelemetry' records an OpenTelemetry consumer span for each message attempt (each batch attempt for "
        "batch_signal receivers), continuing the producer's trace from the traceparent header, with a child span "
        "per receiver call. Needs the otel extra; the service configures the SDK and its exporter. None (the "
        "default) turns tracing off.",
    ),
}


@dataclass(frozen=True)
class TracingConfig:
    """Which tracer, if any, the consumer reports spans to."""

    #: ``"opentelemetry"``, or None when tracing is off.
    backend: str | None = None


def tracing_config(top: dict[str, Any]) -> TracingConfig:
    """Resolve the keys of this subject (checked already)."""
    return TracingConfig(backend=top.get("TRACING") or None)


def opentelemetry_installed() -> bool:
    """Whether opentelemetry-api can be imported (it is looked for, not imported)."""
    try:
        return importlib.util.find_spec(OPENTELEMETRY_MODULE) is not None
    except (ImportError, ValueError):  # the ``opentelemetry`` namespace package itself is missing or broken
        return False


def problems(value: dict[str, Any]) -> list[Problem]:
    """E140: TRACING is None or 'opentelemetry'; E141: 'opentelemetry' with opentelemetry-api installed."""
    tracing = value.get("TRACING")
    if tracing is None:
        return []
    if not isinstance(tracing, str) or tracing != OPENTELEMETRY:
        return [
            Problem(
                "kafka_consumer_app.E140",
                f"KAFKA_CONSUMER['TRACING'] must be 'opentelemetry' or None, not {tracing!r}",
                "Set 'opentelemetry' to record OpenTelemetry spans, or remove TRACING to turn tracing off.",
            )
        ]
    if opentelemetry_installed():
        return []
    return [
        Problem(
            "kafka_consumer_app.E141",
            "KAFKA_CONSUMER['TRACING'] is 'opentelemetry', but opentelemetry-api is not installed",
            f"{OTEL_INSTALL}, and configure the OpenTelemetry SDK in the service; or remove TRACING.",
        )
    ]
