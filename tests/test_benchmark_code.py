"""
The benchmarks' own code (not their figures): the schema registry they serve, CPU per message, the Open edX rows,
the concurrency scenario's recorder, settings, backlog windows and rows, and the ORM runs' databases.

No benchmark runs here and nothing is timed.
"""

from __future__ import annotations

import json
import runpy
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

import benchmarks
from benchmarks.cli import build_parser, settings_from
from benchmarks.cluster import BenchmarkError
from benchmarks.config import QUICK, TARGETS, BenchSettings
from benchmarks.context import Context
from benchmarks.databases import TABLE, PostgresDatabase, SqliteDatabase, run_database_name
from benchmarks.recorder import LockedRecorder, Recorder, RecorderOptions, read_result
from benchmarks.registry import schema_registry
from benchmarks.report import concurrency_rows, openedx_rows, throughput_rows
from benchmarks.scenarios import RUNNERS
from benchmarks.scenarios.concurrency import (
    RSS_SAMPLES,
    SEQUENTIAL_SHARE,
    BacklogRun,
    ConcurrencyResult,
    ConcurrencyRun,
    backlog_result,
    rss_counts,
    sequential_messages,
)
from benchmarks.scenarios.openedx import OpenEdxResult
from benchmarks.scenarios.throughput import ThroughputResult, check_rows
from benchmarks.stats import cpu_per_message_us
from kafka_consumer_app.testing.postgres import LocalPostgres

SCHEMA = {"type": "record", "name": "Login", "fields": [{"name": "user", "type": "string"}]}
CONTEXT = SerializationContext("bench-topic", MessageField.VALUE)


@pytest.fixture
def registry_url():
    with schema_registry() as url:
        yield url


def test_the_benchmark_registry_serves_confluent_kafkas_serializer_and_deserializer_over_http(registry_url):
    producer_client, consumer_client = (SchemaRegistryClient({"url": registry_url}) for _ in range(2))
    data = AvroSerializer(producer_client, json.dumps(SCHEMA))({"user": "ada"}, CONTEXT)

    assert AvroDeserializer(consumer_client)(data, CONTEXT) == {"user": "ada"}


def test_the_benchmark_registry_gives_one_id_to_one_schema_whoever_registers_it(registry_url):
    first, second = (SchemaRegistryClient({"url": registry_url}) for _ in range(2))
    ids = [client.register_schema("t-value", Schema(json.dumps(SCHEMA), "AVRO")) for client in (first, second)]

    assert ids == [1, 1]


def test_the_benchmark_registry_answers_an_unknown_schema_id_as_confluents_does(registry_url):
    with pytest.raises(SchemaRegistryError) as raised:
        SchemaRegistryClient({"url": registry_url}).get_schema(41)

    assert (raised.value.http_status_code, raised.value.error_code) == (404, 40403)


def test_cpu_per_message_spans_the_same_intervals_as_the_rate():
    assert cpu_per_message_us(11, 1_000_000, 3_000_000) == 200.0
    with pytest.raises(ValueError, match="CPU time"):
        cpu_per_message_us(11, None, 3_000_000)


def test_the_open_edx_rows_hold_ours_to_both_targets_round_by_round():
    result = OpenEdxResult(1000, 6)
    result.rates = {"loop": [100.0, 100.0], "ours": [95.0, 250.0], "peer": [50.0, 100.0]}
    result.cpu_us = {"loop": [10.0, 10.0], "ours": [9.0, 8.0], "peer": [30.0, 30.0]}

    rows = {row.metric: row for row in openedx_rows(result, BenchSettings(repetitions=2))}

    peer, loop = rows["b/c (ours/peer), msgs/s"], rows["b/a (ours/loop), msgs/s"]
    assert (peer.result, peer.target, peer.status) == ("2.2 [1.9-2.5]", f"≥ {TARGETS.openedx_peer_ratio:.2f}", "PASS")
    assert (loop.result, loop.status) == ("1.73 [0.95-2.5]", "PASS")


def test_the_throughput_rows_fail_a_no_op_run_that_costs_too_much_cpu():
    result = ThroughputResult(1000, 300, 6)
    result.rates = {"reference": [100.0], "noop": [90.0], "orm": [10.0]}
    result.cpu_us = {"reference": [10.0], "noop": [16.0], "orm": [100.0]}

    rows = {row.metric: row for row in throughput_rows(result, BenchSettings(repetitions=1))}

    assert (rows["b/a, msgs/s"].status, rows["b/a, CPU/msg"].status) == ("PASS", "FAIL")


def six_variant_result(orm_pg: float, batch_pg: float) -> ThroughputResult:
    """One round of every throughput variant; SQLite's batch receiver writes 4.8 times the per-message one's rows."""
    result = ThroughputResult(1000, 300, 6)
    rates = {
        "reference": 100.0,
        "noop": 90.0,
        "orm": 10.0,
        "orm-batch": 48.0,
        "orm-pg": orm_pg,
        "orm-batch-pg": batch_pg,
    }
    result.rates = {key: [value] for key, value in rates.items()}
    result.cpu_us = {key: [1000 / value] for key, value in rates.items()}
    return result


def test_the_batch_target_is_held_on_postgresql_while_sqlites_batch_ratio_is_shown_without_one():
    rows = throughput_rows(six_variant_result(orm_pg=4.0, batch_pg=24.0), BenchSettings(repetitions=1))
    by_metric = {row.metric: row for row in rows}

    postgres = by_metric["f/e (PostgreSQL: bulk_create batch receiver over per-message), msgs/s"]
    sqlite = next(row for row in rows if row.metric.startswith("d/c (SQLite"))
    assert (postgres.result, postgres.target, postgres.status) == ("6", f"≥ {TARGETS.postgres_batch_ratio:.2f}", "PASS")
    assert (sqlite.result, sqlite.target, sqlite.status) == ("4.8", "", "")


def test_a_postgresql_batch_receiver_under_five_times_the_per_message_one_fails_the_target():
    rows = throughput_rows(six_variant_result(orm_pg=4.0, batch_pg=16.0), BenchSettings(repetitions=1))

    assert next(row for row in rows if row.metric.startswith("f/e (PostgreSQL: ")).status == "FAIL"


def test_the_throughput_rows_name_each_orm_receivers_database():
    rows = throughput_rows(six_variant_result(orm_pg=4.0, batch_pg=24.0), BenchSettings(repetitions=1))
    rate_rows = [row.metric for row in rows if row.metric.startswith("(") and row.metric.endswith("msgs/s")]

    assert [metric.split(",")[2].split("(")[0].strip() for metric in rate_rows[2:]] == [
        "SQLite",
        "SQLite",
        "PostgreSQL",
        "PostgreSQL",
    ]


# -- the concurrency scenario ---------------------------------------------------------------------


def test_a_locked_recorder_counts_every_message_of_many_threads_and_writes_at_the_expected_count(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    for name, value in {"BENCH_RESULT_FILE": str(path), "BENCH_EXPECTED": "8000", "BENCH_RECORDER_LOCKED": "1"}.items():
        monkeypatch.setenv(name, value)
    recorder = Recorder.from_env()
    threads = [threading.Thread(target=lambda: [recorder.record() for _ in range(1000)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert isinstance(recorder, LockedRecorder)
    written = read_result(path)
    assert (written["count"], written["cpu_last_ns"] is not None) == (8000, True)


def test_recorder_options_carry_the_lock_which_is_off_by_default():
    options = RecorderOptions(expected=5, rss_at=frozenset({1, 3}), locked=True)

    assert RecorderOptions.from_env(options.to_env()) == options
    assert RecorderOptions.from_env({}).locked is False


def test_rss_readings_keep_the_time_they_were_read_at():
    recorder = Recorder(RecorderOptions(rss_at=frozenset({1, 2})))
    recorder.record()
    recorder.record()

    written = recorder.as_dict()
    assert sorted(written["rss"]) == sorted(written["rss_ns"]) == ["1", "2"]
    assert written["rss_ns"]["2"] == written["last_ns"]


def test_bench_concurrency_sets_the_benchmark_projects_concurrency(monkeypatch):
    settings_file = Path(benchmarks.__file__).parent / "settings.py"
    monkeypatch.delenv("BENCH_CONCURRENCY", raising=False)
    assert "CONCURRENCY" not in runpy.run_path(str(settings_file))["KAFKA_CONSUMER"]

    monkeypatch.setenv("BENCH_CONCURRENCY", "32")
    assert runpy.run_path(str(settings_file))["KAFKA_CONSUMER"]["CONCURRENCY"] == 32


def benchmark_settings() -> dict[str, Any]:
    """The benchmark project's settings module, run afresh with the environment as it is now."""
    return runpy.run_path(str(Path(benchmarks.__file__).parent / "settings.py"))


def test_bench_database_url_puts_the_orm_receivers_database_on_postgresql_with_its_connection_lifetime(monkeypatch):
    monkeypatch.setenv("BENCH_DATABASE_URL", "postgresql://postgres:secret@127.0.0.1:54321/run_1_orm_pg")
    monkeypatch.setenv("BENCH_DB_PATH", "ignored.sqlite3")
    monkeypatch.setenv("BENCH_CONN_MAX_AGE", "none")

    database = benchmark_settings()["DATABASES"]["default"]

    assert (database["ENGINE"], database["NAME"], database["PORT"], database["CONN_MAX_AGE"]) == (
        "django.db.backends.postgresql",
        "run_1_orm_pg",
        "54321",
        None,
    )


def test_without_bench_database_url_the_orm_receivers_database_stays_the_sqlite_file(monkeypatch):
    monkeypatch.delenv("BENCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("BENCH_DB_PATH", "run.sqlite3")
    monkeypatch.setenv("BENCH_CONN_MAX_AGE", "60")

    database = benchmark_settings()["DATABASES"]["default"]

    assert (database["ENGINE"], database["NAME"], database["CONN_MAX_AGE"]) == (
        "django.db.backends.sqlite3",
        "run.sqlite3",
        60,
    )


def test_concurrency_is_a_scenario_of_only_with_sizes_of_its_own():
    args = build_parser().parse_args(["--only", "concurrency,throughput", "--quick", "--concurrency-threads", "8"])
    settings = settings_from(args)

    assert args.only == ("throughput", "concurrency")
    assert "concurrency" in RUNNERS
    assert (settings.concurrency_threads, settings.concurrency_messages) == (8, QUICK.concurrency_messages)


def test_the_sequential_run_is_timed_over_a_share_of_the_topic_and_the_backlog_reads_rss_up_to_its_end():
    assert sequential_messages(80_000) == 80_000 // SEQUENTIAL_SHARE
    assert sequential_messages(3) == 2
    counts = rss_counts(100_000)
    assert (min(counts), max(counts), len(counts)) == (1, 100_000, RSS_SAMPLES + 1)
    assert 0 not in rss_counts(10)


def backlog(readings: list[tuple[float, float]]) -> BacklogRun:
    """A backlog run with one RSS reading (seconds since the first message, MB) every 1,000 messages."""
    run = BacklogRun(32, 1.0, 1_000_000)
    for index, (seconds, megabytes) in enumerate(readings, start=1):
        run.seconds[index * 1000] = seconds
        run.rss_bytes[index * 1000] = int(megabytes * 1e6)
    return run


def test_the_backlog_compares_the_peaks_of_its_first_and_last_windows_after_the_warm_up():
    # librdkafka drops a paused partition's prefetched messages: the RSS swings, its peak stays.
    swinging = backlog([(0.0, 20.0)] + [(5.0 + i, 100.0 if i % 2 else 160.0) for i in range(41)])

    first, last = swinging.windows()
    assert [swinging.seconds[count] for count in (first[0], first[-1], last[0], last[-1])] == [5, 15, 35, 45]
    assert (swinging.peak(first), swinging.growth) == (160_000_000, 0)

    leaking = backlog([(5.0 + i, 100.0 + i) for i in range(41)])
    assert leaking.growth == 30_000_000  # the peak at 45 s over the peak at 15 s


def test_a_backlog_run_with_too_few_readings_after_its_warm_up_is_an_error():
    with pytest.raises(BenchmarkError, match="warm-up"):
        backlog([(1.0, 100.0), (4.0, 100.0), (6.0, 100.0)]).windows()


def test_the_backlog_run_is_read_from_its_recorders_output():
    recorded = {
        "count": 3001,
        "first_ns": 1_000_000_000,
        "last_ns": 2_000_000_000,
        "rss": {"1": 50_000_000, "3000": 60_000_000},
        "rss_ns": {"1": 1_000_000_000, "3000": 1_500_000_000},
    }

    run = backlog_result(32, 10_000, recorded)

    assert (run.rss_bytes, run.seconds) == ({1: 50_000_000, 3000: 60_000_000}, {1: 0.0, 3000: 0.5})
    assert (run.handled, run.rate) == (3001, 3000.0)


def concurrency_result(sequential_rate: float, concurrent_rate: float, leak_mb: float) -> ConcurrencyResult:
    return ConcurrencyResult(
        5.0,
        6,
        ConcurrencyRun(1, 2000, sequential_rate, 120.0),
        ConcurrencyRun(32, 80_000, concurrent_rate, 60.0),
        backlog([(5.0 + i, 150.0 + leak_mb * i / 40) for i in range(41)]),
    )


def test_the_concurrency_rows_hold_the_ratio_and_the_backlogs_growth_to_their_targets():
    passing = {row.metric: row for row in concurrency_rows(concurrency_result(180.0, 4500.0, leak_mb=2.0))}
    failing = {row.metric: row for row in concurrency_rows(concurrency_result(180.0, 3000.0, leak_mb=16.0))}

    ratio, growth = passing["32/1, msgs/s"], passing["growth of the peak"]
    assert (ratio.result, ratio.target, ratio.status) == ("25", f"≥ {TARGETS.concurrency_ratio:g}", "PASS")
    assert (growth.result, growth.target, growth.status) == (
        "+1.5 MB",
        f"≤ {TARGETS.backlog_rss_growth_mb:g} MB",
        "PASS",
    )
    assert (failing["32/1, msgs/s"].status, failing["growth of the peak"].status) == ("FAIL", "FAIL")
    assert passing["CONCURRENCY=1, msgs/s over 2,000 msgs"].benchmark.startswith("Concurrency (5 ms receiver")


def test_the_throughput_rows_say_they_ran_at_concurrency_1():
    result = ThroughputResult(1000, 300, 6)
    result.rates = {"reference": [100.0], "noop": [90.0], "orm": [10.0]}
    result.cpu_us = {"reference": [10.0], "noop": [11.0], "orm": [100.0]}

    assert "CONCURRENCY=1" in throughput_rows(result, BenchSettings(repetitions=1))[0].benchmark


# -- the ORM runs' databases ----------------------------------------------------------------------


def sqlite_template(path: Path) -> SqliteDatabase:
    """A SQLite file holding the ORM receivers' table (as ``migrate`` leaves it), with one row."""
    with sqlite3.connect(path) as connection:
        connection.execute(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, kind TEXT)")
        connection.execute(f"INSERT INTO {TABLE} (kind) VALUES ('template')")
    connection.close()
    return SqliteDatabase(path)


def test_a_sqlite_run_writes_to_its_own_copy_of_the_template(tmp_path):
    template = sqlite_template(tmp_path / "template.sqlite3")
    run = template.copy("throughput_1_orm")
    with sqlite3.connect(run.path) as connection:
        connection.execute(f"INSERT INTO {TABLE} (kind) VALUES ('run')")
    connection.close()

    assert (run.env(), run.rows(), template.rows()) == (
        {"BENCH_DB_PATH": str(tmp_path / "throughput_1_orm.sqlite3")},
        2,
        1,
    )


def test_a_sqlite_runs_database_goes_with_its_wal_files(tmp_path):
    run = sqlite_template(tmp_path / "template.sqlite3").copy("run")
    (tmp_path / "run.sqlite3-wal").touch()

    run.remove()

    assert sorted(path.name for path in tmp_path.iterdir()) == ["template.sqlite3"]


def test_a_postgresql_run_writes_to_a_database_made_from_the_template(postgres_server: LocalPostgres):
    postgres_server.create_database("bench_test_template")
    postgres_server.execute(f"CREATE TABLE {TABLE} (id serial PRIMARY KEY)", database="bench_test_template")
    template = PostgresDatabase(postgres_server, "bench_test_template")
    run = template.copy("bench_test_run")
    try:
        postgres_server.execute(f"INSERT INTO {TABLE} DEFAULT VALUES", database=run.name)

        assert (run.rows(), template.rows()) == (1, 0)
        assert run.env() == {"BENCH_DATABASE_URL": postgres_server.url("bench_test_run")}
    finally:
        run.remove()
        template.remove()


class CountedDatabase:
    """A run database whose rows are given, and which remembers being removed."""

    name = "run_db"

    def __init__(self, rows: int) -> None:
        self.count = rows
        self.removed = False

    def env(self) -> dict[str, str]:
        return {}

    def copy(self, name: str) -> CountedDatabase:
        return self

    def rows(self) -> int:
        return self.count

    def remove(self) -> None:
        self.removed = True


def test_an_orm_run_that_wrote_the_wrong_number_of_rows_fails_loudly_and_its_database_still_goes():
    database = CountedDatabase(999)

    with pytest.raises(BenchmarkError, match="wrote 999 rows into run_db, expected 1000"):
        check_rows(database, 1000)
    assert database.removed


def test_a_run_database_is_named_after_its_run_in_postgresqls_plain_identifiers():
    assert run_database_name("throughput-2-orm-batch-pg") == "throughput_2_orm_batch_pg"


def test_a_scenario_asking_for_postgresql_when_none_was_started_is_a_benchmark_error(tmp_path):
    context = Context(cluster=None, settings=QUICK, workdir=tmp_path)  # type: ignore[arg-type]

    with pytest.raises(BenchmarkError, match="PostgreSQL"):
        context.postgres_server()
