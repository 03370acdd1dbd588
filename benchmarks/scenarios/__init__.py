"""
One module per measurement; each has a ``run(context)`` returning its result dataclass.

:data:`RUNNERS` maps the names accepted by ``--only`` to those functions; the orchestrator starts a
PostgreSQL server only when one of :data:`NEEDS_POSTGRES` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.context import Context
from benchmarks.scenarios import concurrency, latency, memory, openedx, scaling, startup, throughput

RUNNERS: dict[str, Callable[[Context], Any]] = {
    "throughput": throughput.run,
    "openedx": openedx.run,
    "latency": latency.run,
    "memory": memory.run,
    "scaling": scaling.run,
    "concurrency": concurrency.run,
    "startup": startup.run,
}

#: The scenarios that need the session's PostgreSQL server (``Context.postgres``).
NEEDS_POSTGRES = frozenset({"throughput"})
