"""
Scaling: 1, 2, 3 ... ``consume_events`` processes in one group share a topic; a receiver sleeps 5 ms.

For each step, N processes start together in a new group. Once every one of them has handled a
message (so the group's assignment is final) plus one settling second, they run for
``scaling_seconds`` more and get SIGTERM. Every receiver keeps the time of each message it
handled; the step's rate is the messages handled by all processes within the window where all
of them ran (from the last one's start plus the settling second to the first one's last
message), divided by the window's length. Efficiency is that rate over N times the 1-process rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks import processes
from benchmarks.cluster import BenchmarkError, produce_bulk
from benchmarks.context import Context
from benchmarks.processes import MeasuredProcess
from benchmarks.progress import say
from benchmarks.recorder import RecorderOptions

#: Seconds after the last process's first message before the window opens.
SETTLE_SECONDS = 1.0
#: Seconds of consumption per process the topic holds beyond ``scaling_seconds`` (startup and margin).
SPARE_SECONDS = 30.0


@dataclass
class ScalingStep:
    """The total rate of N processes over their common window."""

    processes: int
    rate: float
    window_seconds: float
    handled_in_window: list[int]


@dataclass
class ScalingResult:
    """Every step, in the order run."""

    sleep_ms: float
    partitions: int
    steps: list[ScalingStep] = field(default_factory=list)

    def efficiency(self, step: ScalingStep) -> float | None:
        """``step``'s rate over N times the 1-process rate (None when 1 process was not run)."""
        single = next((item for item in self.steps if item.processes == 1), None)
        if single is None or single.rate <= 0:
            return None
        return step.rate / (step.processes * single.rate)


def run(context: Context) -> ScalingResult:
    """Produce enough messages for the largest step, then run each step in its own group."""
    settings = context.settings
    per_process = 1000 / settings.scaling_sleep_ms
    needed = int(max(settings.scaling_processes) * per_process * (settings.scaling_seconds + SPARE_SECONDS))
    topic = context.cluster.new_topic("scaling", settings.partitions)
    say(f"scaling: producing {needed:,} messages to {topic}")
    produce_bulk(context.bootstrap, topic, needed, settings.payload_bytes, settings.partitions)
    result = ScalingResult(settings.scaling_sleep_ms, settings.partitions)
    for count in settings.scaling_processes:
        step = _run_step(context, topic, count)
        result.steps.append(step)
        say(f"scaling: {count} process(es): {step.rate:,.1f} msgs/s over {step.window_seconds:.1f}s")
    return result


def _run_step(context: Context, topic: str, count: int) -> ScalingStep:
    """Run ``count`` processes in a new group for the step's duration, then measure their common window."""
    settings = context.settings
    group = context.cluster.new_group(f"scaling-{count}")
    members = [
        processes.consume_events(
            f"scaling-{count}-{index}",
            context.workdir,
            bootstrap=context.bootstrap,
            topic=topic,
            group=group,
            receiver="sleep",
            recorder=RecorderOptions(keep_times=True),
            env={"BENCH_SLEEP_MS": str(settings.scaling_sleep_ms)},
        )
        for index in range(count)
    ]
    with processes.running(*members):
        processes.wait_until(
            lambda: all(member.started() for member in members), 90, f"all {count} processes to start", members
        )
        time.sleep(SETTLE_SECONDS + settings.scaling_seconds)
        _stop(members)
    return window_rate(count, [member.result() for member in members])


def _stop(members: list[MeasuredProcess]) -> None:
    """SIGTERM every member at once, then wait for each to exit cleanly."""
    for member in members:
        member.terminate()
    for member in members:
        member.wait(60)


def window_rate(count: int, recorded: list[dict[str, Any]]) -> ScalingStep:
    """The total rate within the window where every process was consuming."""
    start = max(item["first_ns"] for item in recorded) + int(SETTLE_SECONDS * 1e9)
    end = min(item["last_ns"] for item in recorded)
    if end <= start:
        raise BenchmarkError(f"scaling: {count} processes never consumed at the same time")
    handled = [sum(1 for stamp in item["times_ns"] if start <= stamp <= end) for item in recorded]
    seconds = (end - start) / 1e9
    return ScalingStep(count, sum(handled) / seconds, seconds, handled)
