"""
Property-based tests: any value of any option of any command, and of any setting, ends well.

"Well" is: no Python traceback, no death by a signal (librdkafka's C assertions abort()), and
when the command fails, exactly one line on stderr saying why. Valid generated values are fine
too: the command then proceeds, against a closed port with a short CONNECT_TIMEOUT, and fails
there, also on one line.

The settings are checked in-process with many examples (``topics.problems()`` and the topic's
resolved config); the command lines and a sample of the settings run as real processes, many
per interpreter: tests/forked_commands.py starts Django once and forks a child per case.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kafka_consumer_app.settings import failures, schema_registry, topics
from kafka_consumer_app.settings import manifests as manifest_settings
from kafka_consumer_app.testing.broker import free_port
from kafka_consumer_app.validation import MAX_SECONDS, group_id_problem, topic_name_problem

from .kafka_utils import ROOT

FORKED = ROOT / "tests" / "forked_commands.py"
#: Values per process (one Django start-up, then a fork per value), and processes per test.
PROCESS_EXAMPLES = 6
#: No shrinking: each step would start a process, and the failure message lists every input of the batch.
PROCESS_RUNS: dict[str, Any] = {
    "max_examples": 2,
    "deadline": None,
    "database": None,
    "phases": [Phase.explicit, Phase.generate],
    "suppress_health_check": list(HealthCheck),
}
#: Lines of the app's own log format (configure_logging) and of librdkafka's; not the error line.
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) |%\d\|)")

# -- generated values ----------------------------------------------------------------------------

#: The classes of bad input, always in the mix: empty, blank, surrounding space, control characters,
#: non-ASCII, over-long, a trailing newline, and the names Kafka forbids.
EDGE_TEXTS = ["", " ", "\t", "\n", "   ", " orders", "orders ", "orders\n", "a\x01b", "é", "订单", "x" * 250]
EDGE_TEXTS += ["g" * 5000, ".", "..", "a b", "a/b", "\u2028", "-", "nan", "inf", "-1", "0", "1e999", "65536"]


def text_classes(nul: bool = True) -> list[st.SearchStrategy[str]]:
    """Any text, as classes: the edge cases above, blanks, generated text of every category (NUL where it can be)."""
    excluded = ("Cs",) if nul else ("Cs", "Cc")  # argv can hold neither a lone surrogate nor a NUL
    generated = st.text(st.characters(exclude_categories=excluded), max_size=300)
    # Blank values aborted librdkafka (group ids): a class of their own, so that a few examples find them.
    blank = st.text(alphabet=" \t\n\r\x0b\x0c", min_size=1, max_size=4)
    return [st.sampled_from([t for t in EDGE_TEXTS if nul or "\x00" not in t]), blank, generated]


NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 65535, 65536, 2**31, 2**63, MAX_SECONDS + 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-300, 1e300]),
)
SCALARS = st.one_of(*text_classes(), NUMBERS, st.booleans(), st.none())
ANY_VALUE = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.tuples(SCALARS),
    st.dictionaries(st.text(max_size=10), SCALARS, max_size=3),
)
#: A command-line value: what a shell can pass, numbers as a user would type them included.
ARGV_VALUE = st.one_of(*text_classes(nul=False), NUMBERS.map(str))

# -- the inputs ----------------------------------------------------------------------------------

VALID = {"BOOTSTRAP_SERVERS": "127.0.0.1:9092", "GROUP_ID": "svc"}

#: Every option of every command taking a value, with the other options it needs: (argv before, argv after).
OPTIONS: dict[str, tuple[list[str], list[str]]] = {
    "consume_events --topic": (["consume_events", "--allow-no-handlers", "--topic"], []),
    "consume_events -t": (["consume_events", "--allow-no-handlers", "-t"], []),
    "consume_events --group-id": (["consume_events", "--topic", "orders", "--allow-no-handlers", "--group-id"], []),
    "consume_events -g": (["consume_events", "--topic", "orders", "--allow-no-handlers", "-g"], []),
    "consume_events --group_id": (["consume_events", "--topic", "orders", "--allow-no-handlers", "--group_id"], []),
    "consume_events --extra": (["consume_events", "--topic", "orders", "--allow-no-handlers", "--extra"], []),
    "consume_events --max-messages": (
        ["consume_events", "--topic", "orders", "--allow-no-handlers", "--max-messages"],
        [],
    ),
    "consume_events --idle-timeout": (
        ["consume_events", "--topic", "orders", "--allow-no-handlers", "--idle-timeout"],
        [],
    ),
    "consume_events --offset-time": (
        ["consume_events", "--topic", "orders", "--allow-no-handlers", "--offset-time"],
        [],
    ),
    "consume_events --health-port": (
        ["consume_events", "--topic", "orders", "--allow-no-handlers", "--health-port"],
        [],
    ),
    "replay_dead_letters --topic": (["replay_dead_letters", "--dry-run", "--topic"], []),
    "replay_dead_letters --to": (["replay_dead_letters", "--topic", "orders-dlt", "--dry-run", "--to"], []),
    "replay_dead_letters --max-messages": (["replay_dead_letters", "--topic", "orders-dlt", "--max-messages"], []),
    "replay_dead_letters --group-id": (["replay_dead_letters", "--topic", "orders-dlt", "--group-id"], []),
    "consumer_status --topic": (["consumer_status", "--topic"], []),
    "consumer_status --group-id": (["consumer_status", "--topic", "orders", "--group-id"], []),
    "consumer_manifests --image": (["consumer_manifests", "--topic", "orders", "--image"], []),
    "consumer_manifests --topic": (["consumer_manifests", "--image", "registry/app:1", "--topic"], []),
    "consumer_manifests --namespace": (
        ["consumer_manifests", "--image", "registry/app:1", "--topic", "orders", "--namespace"],
        [],
    ),
    "consumer_manifests --output": (
        ["consumer_manifests", "--image", "registry/app:1", "--topic", "orders", "--output"],
        [],
    ),
    "probe --file": (["probe", "--file"], []),
    "probe --topic": (["probe", "--topic"], []),
    "probe --max-age": (["probe", "--topic", "orders", "--max-age"], []),
}

#: Where a setting lives: a top-level key, or (parent, key) for TOPICS['orders'], RETRY, MANIFESTS...
SETTING_PATHS: list[tuple[str, ...]] = (
    [(key,) for key in topics.SETTINGS_DOC]
    + [("TOPICS", "orders", key) for key in topics.TOPIC_SETTINGS_DOC]
    + [("RETRY", key) for key in failures.RETRY_DOC]
    + [("MANIFESTS", key) for key in manifest_settings.MANIFESTS_DOC]
    + [("SCHEMA_REGISTRY", key) for key in schema_registry.SCHEMA_REGISTRY_DOC]
    + [("CONSUMER_CONFIG", option) for option in ("session.timeout.ms", "client.id", "max.poll.interval.ms")]
    + [("PRODUCER_CONFIG", option) for option in ("linger.ms", "message.timeout.ms")]
)
#: Settings whose valid values would send a process to the network (a host name to resolve, a registry):
#: checked in-process only.
IN_PROCESS_ONLY = {("BOOTSTRAP_SERVERS",), ("SCHEMA_REGISTRY", "URL")}


def overrides(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """The KAFKA_CONSUMER keys that set ``path`` to ``value`` (a registry gets its required URL)."""
    if len(path) == 1:
        return {path[0]: value}
    base = {"URL": "https://registry:8081"} if path[0] == "SCHEMA_REGISTRY" else {}
    inner: Any = value
    for key in reversed(path[1:]):
        inner = {key: inner}
    return {path[0]: {**base, **inner}}


# -- checking one outcome ------------------------------------------------------------------------


def outcome_problem(result: dict[str, Any]) -> str | None:
    """Why a process's outcome breaks the rules (traceback, signal, not one error line), or None."""
    code, stderr = result["returncode"], result["stderr"]
    if code < 0 or code == 134:
        return f"killed by signal {-code if code < 0 else 6}"
    if "Traceback (most recent call last)" in stderr:
        return "printed a traceback"
    if code != 0:
        lines = [line for line in stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]
        if len(lines) != 1:
            return f"exited {code} with {len(lines)} error lines on stderr, not 1"
    return None


def run_forked(cases: list[dict[str, Any]], tmp_path, bootstrap: str | None = None) -> list[dict[str, Any]]:
    """Run ``cases`` with tests/forked_commands.py: the test settings, pointed at ``bootstrap`` or a closed port."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("KAFKA_", "TESTAPP_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "example")]),
        KAFKA_BOOTSTRAP_SERVERS=bootstrap or f"127.0.0.1:{free_port()}",
        KAFKA_CONNECT_TIMEOUT="0.3",
        KAFKA_HEARTBEAT_FILE=str(tmp_path / "heartbeat"),
    )
    done = subprocess.run(
        [sys.executable, str(FORKED)],
        input=pickle.dumps(cases),
        env=env,
        cwd=tmp_path,  # relative paths generated for files and directories land here
        capture_output=True,
        timeout=60 + 5 * len(cases),
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return pickle.loads(done.stdout)


def assert_all_end_well(cases: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
    """Every outcome keeps the rules; the failures are listed with their inputs."""
    failed = [
        f"{case} -> {problem}; stderr tail: {result['stderr'][-300:]!r}"
        for case, result in zip(cases, results, strict=True)
        if (problem := outcome_problem(result))
    ]
    assert not failed, "\n".join(failed)


# -- command-line options, as processes ------------------------------------------------------------


@pytest.mark.parametrize("option", OPTIONS, ids=list(OPTIONS))
@hypothesis_settings(**PROCESS_RUNS)
@given(values=st.lists(ARGV_VALUE, min_size=PROCESS_EXAMPLES, max_size=PROCESS_EXAMPLES))
def test_any_value_of_any_option_ends_in_one_line_or_a_run_never_a_traceback_or_a_signal(
    option, values, tmp_path, request
):
    before, after = OPTIONS[option]
    # --option=VALUE, so that a value starting with '-' is the option's value, not another option.
    long = before[-1].startswith("--")
    cases = [
        {"argv": [*before[:-1], f"{before[-1]}={value}", *after] if long else [*before, value, *after]}
        for value in values
    ]
    # replay_dead_letters waits 30 s for an unreachable broker, whatever CONNECT_TIMEOUT says: give it a real one,
    # where a valid value ends quickly ("topic does not exist").
    bootstrap = request.getfixturevalue("kafka_broker").bootstrap_servers if "replay" in option else None
    assert_all_end_well(cases, run_forked(cases, tmp_path, bootstrap))


# -- settings, as processes ---------------------------------------------------------------------------

PROCESS_PATHS = [path for path in SETTING_PATHS if path not in IN_PROCESS_ONLY]


@hypothesis_settings(**PROCESS_RUNS)
@given(values=st.lists(ANY_VALUE, min_size=len(PROCESS_PATHS), max_size=len(PROCESS_PATHS)))
def test_any_value_of_any_setting_ends_in_one_line_never_a_traceback_or_a_signal(values, tmp_path):
    cases = [
        {"argv": ["consume_events", "--topic", "orders", "--allow-no-handlers"], "settings": overrides(path, value)}
        for path, value in zip(PROCESS_PATHS, values, strict=True)
    ]
    assert_all_end_well(cases, run_forked(cases, tmp_path))


# -- settings, in-process ---------------------------------------------------------------------------


@hypothesis_settings(max_examples=600, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(SETTING_PATHS), value=ANY_VALUE)
def test_any_setting_is_refused_on_one_line_or_resolves_to_values_librdkafka_accepts(settings, path, value):
    # pytest-django's `settings` fixture is restored after each test; within it, each example resets it.
    settings.KAFKA_CONSUMER = {**VALID, **overrides(path, value)}
    found = topics.problems(topic="orders")
    if found:
        assert all("\n" not in problem.one_line() for problem in found)
        return
    config = topics.get_topic_config("orders")
    assert (group_id_problem(config.group_id), topic_name_problem(config.kafka_topic)) == (None, None)
    numbers = [config.poll_timeout, config.connect_timeout, config.progress_interval, config.health.max_age]
    assert all(math.isfinite(number) and 0 < number <= MAX_SECONDS for number in numbers), numbers
