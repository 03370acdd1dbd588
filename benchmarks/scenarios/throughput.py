"""
Throughput: one topic consumed from start to end, six ways, in alternating rounds.

(a) the hand-written reference loop, (b) ``consume_events`` with a no-op receiver,
(c) ``consume_events`` with a receiver inserting one row through the ORM (SQLite file, WAL,
``CONN_MAX_AGE`` from ``--orm-conn-max-age``), (d) ``consume_events`` with a ``batch_signal``
receiver inserting each batch's rows with one ``bulk_create`` (same database setup, default
``BATCH_SIZE`` and ``BATCH_WAIT``), and (e) and (f): the receivers of (c) and (d) writing to a
PostgreSQL database on the session's local server instead (same ``CONN_MAX_AGE``).
Each run is a fresh process in a fresh consumer group that consumes the whole topic; each ORM
run writes to a fresh copy of a migrated template (:mod:`benchmarks.databases`), whose rows
are counted afterwards. Each run times itself from its first handled message to its last
(:func:`benchmarks.stats.rate`), so startup, group join and the first fetch are outside the
window for all of them alike.

Runs alternate a, b, c, d, e, f, a, b, ... so that slow drift of the machine (other processes, the
broker's page cache, JIT) spreads evenly; ratios are taken per round (b_i / a_i, d_i / c_i,
f_i / e_i) and summarized. Each run also reports its CPU time per message over the same window (the whole
process's, so librdkafka's threads count too): a ratio of rates can hide work that another core absorbed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmarks import processes
from benchmarks.cluster import BenchmarkError, produce_bulk
from benchmarks.context import Context
from benchmarks.databases import RunDatabase, postgres_template, run_database_name, sqlite_template
from benchmarks.processes import MeasuredProcess
from benchmarks.progress import say
from benchmarks.recorder import RecorderOptions
from benchmarks.stats import Summary, cpu_per_message_us, rate

#: (key, label) of each variant, in the order they run within a round.
VARIANTS = (
    ("reference", "(a) hand-written confluent-kafka loop"),
    ("noop", "(b) consume_events, no-op receiver"),
    ("orm", "(c) consume_events, ORM insert receiver, SQLite"),
    ("orm-batch", "(d) consume_events, ORM bulk_create batch receiver, SQLite"),
    ("orm-pg", "(e) consume_events, ORM insert receiver, PostgreSQL"),
    ("orm-batch-pg", "(f) consume_events, ORM bulk_create batch receiver, PostgreSQL"),
)
#: The variants that write rows through the ORM, and the engine of the database each writes to.
ORM_ENGINES = {"orm": "sqlite", "orm-batch": "sqlite", "orm-pg": "postgresql", "orm-batch-pg": "postgresql"}
#: The variants that write rows through the ORM.
ORM_VARIANTS = tuple(ORM_ENGINES)
#: The benchmark receiver (``BENCH_RECEIVER``) of each ``consume_events`` variant: the ORM receivers
#: are the same on either database.
RECEIVERS = {"noop": "noop", "orm": "orm", "orm-batch": "orm-batch", "orm-pg": "orm", "orm-batch-pg": "orm-batch"}


@dataclass
class ThroughputResult:
    """Messages per second, and CPU microseconds per message, of every run, by variant, in run order."""

    messages: int
    payload_bytes: int
    partitions: int
    rates: dict[str, list[float]] = field(default_factory=dict)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)

    def summary(self, variant: str) -> Summary:
        """Median, minimum and maximum msgs/s of one variant."""
        return Summary.of(self.rates[variant])

    def cpu_summary(self, variant: str) -> Summary:
        """Median, minimum and maximum CPU µs per message of one variant."""
        return Summary.of(self.cpu_us[variant])

    def ratio(self, variant: str, base: str = "reference") -> Summary:
        """``variant``'s msgs/s over ``base``'s, round by round (runs of one round ran back to back)."""
        return round_ratios(self.rates[variant], self.rates[base])

    def cpu_ratio(self, variant: str, base: str = "reference") -> Summary:
        """``variant``'s CPU per message over ``base``'s, round by round."""
        return round_ratios(self.cpu_us[variant], self.cpu_us[base])


def round_ratios(values: list[float], bases: list[float]) -> Summary:
    """``values[i] / bases[i]`` for every round, summarized."""
    return Summary.of([value / base for value, base in zip(values, bases, strict=True)])


def measured(name: str, recorded: dict[str, Any], expected: int) -> tuple[float, float]:
    """(msgs/s, CPU µs per message) of one run's recorder output, which must count ``expected`` messages."""
    if recorded["count"] != expected:
        raise BenchmarkError(f"{name} handled {recorded['count']} messages, expected {expected}")
    count, first_count = recorded["count"], recorded.get("first_count", 1)  # a batch receiver's first batch
    return (
        rate(count, recorded["first_ns"], recorded["last_ns"], first_count),
        cpu_per_message_us(count, recorded["cpu_first_ns"], recorded["cpu_last_ns"], first_count),
    )


def run(context: Context) -> ThroughputResult:
    """Produce the topic and migrate the templates once, then run every variant ``repetitions`` times, alternating."""
    settings = context.settings
    topic = context.cluster.new_topic("throughput", settings.partitions)
    say(f"throughput: producing {settings.messages:,} messages of {settings.payload_bytes} bytes to {topic}")
    seconds = produce_bulk(context.bootstrap, topic, settings.messages, settings.payload_bytes, settings.partitions)
    say(f"throughput: produced in {seconds:.1f}s")
    templates: dict[str, RunDatabase] = {
        "sqlite": sqlite_template(context.workdir / "orm-template.sqlite3", context.bootstrap),
        "postgresql": postgres_template(context.postgres_server(), context.bootstrap),
    }
    result = ThroughputResult(settings.messages, settings.payload_bytes, settings.partitions)
    for round_number in range(1, settings.repetitions + 1):
        for variant, label in VARIANTS:
            value, cpu = _run_once(context, variant, topic, round_number, templates)
            result.rates.setdefault(variant, []).append(value)
            result.cpu_us.setdefault(variant, []).append(cpu)
            say(
                f"throughput: round {round_number}/{settings.repetitions} {label}: "
                f"{value:,.0f} msgs/s, {cpu:.1f} µs CPU/msg"
            )
    return result


def _run_once(
    context: Context, variant: str, topic: str, round_number: int, templates: dict[str, RunDatabase]
) -> tuple[float, float]:
    """One process consuming the whole topic in a new group; return its msgs/s and CPU µs per message."""
    messages = context.settings.messages
    name = f"throughput-{round_number}-{variant}"
    database = templates[ORM_ENGINES[variant]].copy(run_database_name(name)) if variant in ORM_ENGINES else None
    env = _orm_env(database, context.settings.orm_conn_max_age) if database is not None else None
    process = _make_process(context, variant, name, topic, env)
    with processes.running(process):
        process.wait(timeout=120 + messages / 100)  # a guard against hangs, far above any expected time
    figures = measured(name, process.result(), messages)
    if database is not None:
        check_rows(database, messages)
    return figures


def _make_process(context: Context, variant: str, name: str, topic: str, env: dict[str, str] | None) -> MeasuredProcess:
    """The process of one run: the reference loop, or consume_events with the variant's receiver."""
    messages = context.settings.messages
    group = context.cluster.new_group(name)
    recorder = RecorderOptions(expected=messages)
    if variant == "reference":
        return processes.reference(
            name,
            context.workdir,
            bootstrap=context.bootstrap,
            topic=topic,
            group=group,
            max_messages=messages,
            recorder=recorder,
        )
    return processes.consume_events(
        name,
        context.workdir,
        bootstrap=context.bootstrap,
        topic=topic,
        group=group,
        receiver=RECEIVERS[variant],
        recorder=recorder,
        args=["--max-messages", str(messages)],
        env=env,
    )


def _orm_env(database: RunDatabase, conn_max_age: str) -> dict[str, str]:
    """The ORM receiver's database: its own copy of the migrated template, and its connection lifetime."""
    return {**database.env(), "BENCH_CONN_MAX_AGE": conn_max_age}


def check_rows(database: RunDatabase, expected: int) -> None:
    """An ORM receiver must have written exactly one row per message; then the database goes."""
    rows = database.rows()
    database.remove()
    if rows != expected:
        raise BenchmarkError(f"the ORM receiver wrote {rows} rows into {database.name}, expected {expected}")
