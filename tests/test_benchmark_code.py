"""
The benchmarks' own code (not their figures): the schema registry they serve, CPU per message, the Open edX rows.

No benchmark runs here and nothing is timed.
"""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from benchmarks.config import TARGETS, BenchSettings
from benchmarks.registry import schema_registry
from benchmarks.report import openedx_rows, throughput_rows
from benchmarks.scenarios.openedx import OpenEdxResult
from benchmarks.scenarios.throughput import ThroughputResult
from benchmarks.stats import cpu_per_message_us

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
