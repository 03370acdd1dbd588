"""What every scenario gets: the broker, the PostgreSQL server if one was needed, the sizes, and a work directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.cluster import BenchmarkError, Cluster
from benchmarks.config import BenchSettings
from kafka_consumer_app.testing.postgres import LocalPostgres


@dataclass(frozen=True)
class Context:
    """The running broker, the sizes to use, and where processes put their logs and results."""

    cluster: Cluster
    settings: BenchSettings
    workdir: Path
    #: The session's PostgreSQL server, started only for the scenarios of
    #: :data:`benchmarks.scenarios.NEEDS_POSTGRES`.
    postgres: LocalPostgres | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the broker."""
        return self.cluster.bootstrap

    def postgres_server(self) -> LocalPostgres:
        """The session's PostgreSQL server; a BenchmarkError when the orchestrator started none."""
        if self.postgres is None:
            raise BenchmarkError("this scenario needs the PostgreSQL server, and none was started for it")
        return self.postgres
