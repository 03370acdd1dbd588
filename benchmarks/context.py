"""What every scenario gets: the broker, the sizes, and a work directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.cluster import Cluster
from benchmarks.config import BenchSettings


@dataclass(frozen=True)
class Context:
    """The running broker, the sizes to use, and where processes put their logs and results."""

    cluster: Cluster
    settings: BenchSettings
    workdir: Path

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the broker."""
        return self.cluster.bootstrap
