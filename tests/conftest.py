"""
Fixtures: one real Apache Kafka broker per test session, and a fresh topic per test; one real
PostgreSQL server per test session (started only if a test asks for it), and a fresh database per test;
one real schema registry (Apicurio Registry) per test session, started only if a test asks for it;
one headless Chromium per test session (started only if a test asks for it), logged out for each test.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kafka_consumer_app.message import Message
from kafka_consumer_app.signals import topic_signal
from kafka_consumer_app.testing.broker import KAFKA_VERSION_ENV, LocalKafkaBroker, kafka_version
from kafka_consumer_app.testing.jars import share_groups, version_tuple
from kafka_consumer_app.testing.postgres import LocalPostgres
from kafka_consumer_app.testing.registry import LocalSchemaRegistry

from .browser_utils import Browser, publish_screenshots, start_chromium
from .kafka_utils import ConsumerProcesses, GroupProtocol, report_figures
from .postgres_utils import PostgresDatabase

_topic_numbers = itertools.count()


#: KIP-848's protocol is generally available from Apache Kafka 4.0 on; its tests are deselected on older brokers.
CONSUMER_PROTOCOL_SINCE = (4, 0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """
    Deselect (not skip) what the brokers' release cannot serve: the tests of KIP-848's group protocol before
    Kafka 4.0 and those of share groups before 4.2.
    """
    release = version_tuple(kafka_version())
    absent = {"consumer_protocol": release < CONSUMER_PROTOCOL_SINCE, "share_groups": not share_groups(kafka_version())}
    markers = [name for name, missing in absent.items() if missing]
    deselected = [item for item in items if any(item.get_closest_marker(name) for name in markers)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


def pytest_report_header() -> str:
    """Name the Apache Kafka release the brokers run, which $KAFKA_CONSUMER_APP_KAFKA_VERSION can change."""
    return f"kafka broker: Apache Kafka {kafka_version()} (${KAFKA_VERSION_ENV} picks another)"


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[LocalKafkaBroker]:
    """
    A single-node KRaft broker on 127.0.0.1, of the release $KAFKA_CONSUMER_APP_KAFKA_VERSION names
    (the default one without it); if it cannot start, every test using it errors.
    """
    broker = LocalKafkaBroker(version=kafka_version())
    try:
        broker.start()
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def make_topic(kafka_broker: LocalKafkaBroker, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Create a topic whose name is unique to this test, and return its name."""

    def make(partitions: int = 1, suffix: str = "") -> str:
        base = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:60]
        name = f"{base}-{next(_topic_numbers)}{suffix}-{uuid.uuid4().hex[:6]}"
        kafka_broker.create_topic(name, partitions)
        return name

    return make


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """A private PostgreSQL server on 127.0.0.1; if it cannot start, every test using it errors."""
    server = LocalPostgres()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


def report_registry_figures(registry: LocalSchemaRegistry, when: str) -> None:
    """One FIGURES line: how long the registry took to start, and its resident memory ``when``."""
    memory = registry.memory_kib()
    report_figures(
        f"FIGURES schema-registry {when}: startup_seconds={registry.startup_seconds or 0:.1f} "
        f"rss_mib={memory // 1024 if memory else 'n/a'}"
    )


@pytest.fixture(scope="session")
def schema_registry_server() -> Iterator[LocalSchemaRegistry]:
    """
    Apicurio Registry on 127.0.0.1, serving the Confluent API at its ``url``; if it cannot start,
    every test using it errors (with the end of its log).
    """
    registry = LocalSchemaRegistry()
    try:
        registry.start()
        report_registry_figures(registry, "started")
        yield registry
        report_registry_figures(registry, "at-end")
    finally:
        registry.cleanup()


@pytest.fixture
def postgres_database(postgres_server: LocalPostgres) -> Iterator[PostgresDatabase]:
    """An empty database for this test, dropped (with its remaining sessions) when the test ends."""
    database = PostgresDatabase(postgres_server, f"test_{uuid.uuid4().hex[:12]}")
    postgres_server.create_database(database.name)
    try:
        yield database
    finally:
        database.close()
        postgres_server.drop_database(database.name)


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    """Where the browser tests save their screenshots; a session without failures then publishes them."""
    directory = tmp_path_factory.mktemp("screenshots")
    yield directory
    if request.session.testsfailed == 0:
        publish_screenshots(directory)


@pytest.fixture(scope="session")
def chromium(live_server: Any) -> Iterator[Any]:
    """
    Headless Chromium through Debian's chromedriver; if it cannot start, every test using it errors.

    It quits before the live server stops: the server's threads still serving its open connections
    close them with the database connection they share, which must still be shared then.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download a driver or a browser
        driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: Any, live_server: Any, screenshot_dir: Path) -> Browser:
    """The session's Chromium, logged out, on this test's live server (which brings transactional_db)."""
    chromium.delete_all_cookies()
    return Browser(chromium, live_server.url, screenshot_dir)


@pytest.fixture
def group_id(request: pytest.FixtureRequest) -> str:
    """A consumer group unique to this test."""
    return f"group-{request.node.name[:40]}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(
    params=["classic", pytest.param("consumer", marks=pytest.mark.consumer_protocol)],
    ids=["classic", "kip848"],
)
def group_protocol(request: pytest.FixtureRequest) -> GroupProtocol:
    """
    A test asking for this runs twice: its consume_events processes use the classic group protocol
    (the app's default), then KIP-848's ``consumer`` protocol (brokers 4.0 and later only).
    """
    return GroupProtocol(request.param)


@pytest.fixture
def consumers(request: pytest.FixtureRequest) -> Iterator[ConsumerProcesses]:
    """Start consume_events processes (in the test's group_protocol, if it has one); those left are killed."""
    protocol = request.getfixturevalue("group_protocol") if "group_protocol" in request.fixturenames else None
    processes = ConsumerProcesses(env=protocol.env if protocol else None)
    try:
        yield processes
    finally:
        processes.kill_all()


@pytest.fixture
def received() -> Iterator[Callable[[str], list[Message]]]:
    """Connect a recording receiver to a topic for one test; ``received(topic)`` returns what it gets."""
    connected = []

    def connect(topic: str) -> list[Message]:
        got: list[Message] = []

        def receiver(sender, message, **kwargs):
            got.append(message)

        topic_signal(topic).connect(receiver, weak=False)
        connected.append((topic, receiver))
        return got

    yield connect
    for topic, receiver in connected:
        topic_signal(topic).disconnect(receiver)


@pytest.fixture
def kafka_settings(settings, kafka_broker: LocalKafkaBroker, group_id: str):
    """Point KAFKA_CONSUMER at the local broker, with this test's group."""
    settings.KAFKA_CONSUMER = {
        **settings.KAFKA_CONSUMER,
        "BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "GROUP_ID": group_id,
    }
    return settings


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figure lines of the delivery and fault-injection scenarios, even when output is captured."""
    from .kafka_utils import FIGURE_LINES

    if FIGURE_LINES:
        terminalreporter.section("delivery and fault-injection figures")
        for line in FIGURE_LINES:
            terminalreporter.write_line(line)
