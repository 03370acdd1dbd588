"""The process's one :class:`~benchmarks.recorder.Recorder`, shared by every benchmark receiver (one result file)."""

from benchmarks.recorder import Recorder

recorder = Recorder.from_env()
