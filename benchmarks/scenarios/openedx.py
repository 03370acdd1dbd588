"""
Open edX events: one topic of Avro events from edx-event-bus-kafka's producer, consumed three ways.

(a) a hand-written confluent-kafka loop with the same Avro decoding and openedx-events' send
(:mod:`benchmarks.openedx_reference`); (b) ``consume_events`` on a topic with ``OPENEDX_EVENTS``;
(c) edx-event-bus-kafka's ``KafkaEventConsumer`` run by openedx-events' ``consume_events``. All
three deliver to the same no-op receiver of ``SESSION_LOGIN_COMPLETED``
(:mod:`benchmarks.benchapp.openedx_receiver`), which makes the recorder call.

The schema registry is :mod:`benchmarks.registry`, served by the orchestrator (its docstring says
why). Each run is a fresh process in a fresh group reading the topic from the start; (c) has no
setting for where a new group starts (librdkafka's default, the end), so its group's offsets are
committed at 0 before it starts, as ``--extra offset_time`` would. (c) has no finite mode either:
it is killed once its recorder wrote the result at the expected count. Rounds alternate a, b, c
and ratios are taken within each round, as in the throughput scenario.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from benchmarks import processes
from benchmarks.cluster import BenchmarkError
from benchmarks.context import Context
from benchmarks.processes import MANAGE, REPO_ROOT, MeasuredProcess
from benchmarks.progress import say
from benchmarks.recorder import RecorderOptions
from benchmarks.registry import schema_registry
from benchmarks.scenarios.throughput import measured, round_ratios
from benchmarks.stats import Summary

#: (key, label) of each contender, in the order they run within a round.
VARIANTS = (
    ("loop", "(a) hand-written loop, AvroDeserializer + send_event"),
    ("ours", "(b) consume_events, OPENEDX_EVENTS"),
    ("peer", "(c) edx-event-bus-kafka via openedx-events' consume_events"),
)


@dataclass
class OpenEdxResult:
    """msgs/s and CPU µs per message of every run, by contender, in run order."""

    messages: int
    partitions: int
    rates: dict[str, list[float]] = field(default_factory=dict)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)

    def summary(self, variant: str) -> Summary:
        """Median, minimum and maximum msgs/s of one contender."""
        return Summary.of(self.rates[variant])

    def cpu_summary(self, variant: str) -> Summary:
        """Median, minimum and maximum CPU µs per message of one contender."""
        return Summary.of(self.cpu_us[variant])

    def ratio(self, variant: str, base: str) -> Summary:
        """``variant``'s msgs/s over ``base``'s, round by round."""
        return round_ratios(self.rates[variant], self.rates[base])

    def cpu_ratio(self, variant: str, base: str) -> Summary:
        """``variant``'s CPU per message over ``base``'s, round by round."""
        return round_ratios(self.cpu_us[variant], self.cpu_us[base])


def run(context: Context) -> OpenEdxResult:
    """Start the registry, produce the events, then run every contender ``repetitions`` times, alternating."""
    settings = context.settings
    topic = context.cluster.new_topic("openedx", settings.partitions)
    result = OpenEdxResult(settings.openedx_messages, settings.partitions)
    with schema_registry() as registry_url:
        say(f"openedx: producing {settings.openedx_messages:,} events with edx-event-bus-kafka to {topic}")
        produce(context, registry_url, topic, settings.openedx_messages)
        for round_number in range(1, settings.repetitions + 1):
            for variant, label in VARIANTS:
                value, cpu = _run_once(context, registry_url, variant, topic, round_number)
                result.rates.setdefault(variant, []).append(value)
                result.cpu_us.setdefault(variant, []).append(cpu)
                say(
                    f"openedx: round {round_number}/{settings.repetitions} {label}: "
                    f"{value:,.0f} msgs/s, {cpu:.1f} µs CPU/msg"
                )
    return result


def openedx_env(registry_url: str, topic: str, *, with_app: bool) -> dict[str, str]:
    """The variables that give a process the Open edX settings and the benchmark's receiver."""
    env = {"BENCH_SCHEMA_REGISTRY_URL": registry_url, "BENCH_TOPIC": topic, "BENCH_RECEIVER": "openedx"}
    if not with_app:
        env["BENCH_WITHOUT_APP"] = "1"
    return env


def produce(context: Context, registry_url: str, topic: str, count: int) -> None:
    """Run :mod:`benchmarks.openedx_produce` to completion (outside any timing)."""
    env = processes.base_env(context.bootstrap, RecorderOptions())
    env.update(openedx_env(registry_url, topic, with_app=False))
    env["BENCH_RECEIVER"] = ""
    argv = [sys.executable, "-m", "benchmarks.openedx_produce", "--topic", topic, "--count", str(count)]
    done = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchmarkError(f"producing the Open edX events failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def _run_once(context: Context, registry_url: str, variant: str, topic: str, round_number: int) -> tuple[float, float]:
    """One process consuming the whole topic in a new group; return its msgs/s and CPU µs per message."""
    messages = context.settings.openedx_messages
    name = f"openedx-{round_number}-{variant}"
    group = context.cluster.new_group(name)
    process = _make_process(context, registry_url, variant, name, topic, group)
    guard = 120 + messages / 100  # far above any expected time
    if variant == "peer":
        start_at_zero(context.bootstrap, topic, group, context.settings.partitions)
        with processes.running(process):
            processes.wait_until(process.has_result, guard, f"{name} to handle {messages:,} events", [process])
            process.kill()  # no finite mode: its result is written, the rest is shutdown
    else:
        with processes.running(process):
            process.wait(timeout=guard)
    return measured(name, process.result(), messages)


def _make_process(
    context: Context, registry_url: str, variant: str, name: str, topic: str, group: str
) -> MeasuredProcess:
    """The process of one run: the loop, this app's consume_events, or openedx-events' with edx-event-bus-kafka."""
    messages = context.settings.openedx_messages
    recorder = RecorderOptions(expected=messages, result_path=context.workdir / f"{name}.json")
    env = processes.base_env(context.bootstrap, recorder)
    env.update(openedx_env(registry_url, topic, with_app=variant == "ours"))
    if variant == "loop":
        argv = [sys.executable, "-m", "benchmarks.openedx_reference", "--bootstrap", context.bootstrap]
        argv += ["--topic", topic, "--group-id", group, "--max-messages", str(messages)]
    elif variant == "ours":
        argv = [sys.executable, str(MANAGE), "consume_events", "--topic", topic, "--group-id", group]
        argv += ["--max-messages", str(messages)]
    else:
        argv = [sys.executable, str(MANAGE), "consume_events", "-t", topic, "-g", group]
    return MeasuredProcess(name=name, argv=argv, env=env, workdir=context.workdir)


def start_at_zero(bootstrap: str, topic: str, group: str, partitions: int) -> None:
    """Commit offset 0 of every partition for ``group``, so that a consumer of it reads from the start."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        offsets = [TopicPartition(topic, partition, 0) for partition in range(partitions)]
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()
