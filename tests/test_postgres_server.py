"""The suite's PostgreSQL server: a real server started by the tests, and consumers that write to it."""

from __future__ import annotations

import socket

import psycopg
import pytest

from kafka_consumer_app.testing.postgres import LocalPostgres, PostgresError, django_database_from_url

from .kafka_utils import produce

pytestmark = pytest.mark.postgres

#: The example service's settings with its orders app; its ORM receivers write to the database.
ORDERS_SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.settings_orders"}
ORDER_PLACED = b"com.example.order.placed.v1"


def test_the_server_answers_as_its_superuser_on_its_port(postgres_server):
    rows = postgres_server.execute("SELECT current_user, inet_server_addr()::text, inet_server_port()")

    assert rows == [(postgres_server.user, "127.0.0.1/32", postgres_server.port)]


def test_the_server_listens_on_the_loopback_address_only_and_skips_durability(postgres_server):
    names = ("listen_addresses", "fsync", "synchronous_commit", "full_page_writes", "max_connections")
    rows = postgres_server.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(names),))

    assert dict(rows) == {
        "listen_addresses": "127.0.0.1",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
    }


def test_a_connection_without_the_password_is_refused(postgres_server):
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host=postgres_server.host, port=postgres_server.port, user="postgres", connect_timeout=5)


def test_a_restart_keeps_the_data_and_the_port():
    with LocalPostgres() as server:
        server.create_database("kept")
        server.execute("CREATE TABLE t (n int); INSERT INTO t VALUES (42)", database="kept")
        port = server.port

        server.stop()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(server.url("kept"), connect_timeout=2)
        server.start()

        assert server.port == port
        assert server.execute("SELECT n FROM t", database="kept") == [(42,)]


def test_a_server_that_cannot_start_raises_with_its_log():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = LocalPostgres(port=taken.getsockname()[1])
        try:
            with pytest.raises(PostgresError) as error:
                server.start()
        finally:
            server.cleanup()

    assert str(error.value).startswith("PostgreSQL exited during startup")
    assert "could not create any TCP/IP sockets" in str(error.value)


def test_terminate_connections_drops_an_open_connection(postgres_database):
    connection = postgres_database.connect()
    connection.execute("SELECT 1")

    assert postgres_database.server.terminate_connections(postgres_database.name) == 1
    with pytest.raises(psycopg.OperationalError):
        connection.execute("SELECT 1")


def test_a_database_url_becomes_a_django_database_entry():
    entry = django_database_from_url("postgresql://app:p%40ss%2Fw@127.0.0.1:6543/orders?connect_timeout=5")

    assert entry == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "orders",
        "USER": "app",
        "PASSWORD": "p@ss/w",
        "HOST": "127.0.0.1",
        "PORT": "6543",
        "OPTIONS": {"connect_timeout": "5"},
    }


def test_migrate_in_a_subprocess_creates_the_app_tables_on_postgres(postgres_database):
    postgres_database.migrate(env=ORDERS_SETTINGS)

    assert {"django_migrations", "auth_user", "orders_order", "orders_auditentry"} <= postgres_database.tables()
    applied = postgres_database.execute("SELECT app, name FROM django_migrations WHERE app = 'orders'")
    assert applied == [("orders", "0001_initial")]


@pytest.mark.broker
def test_the_example_orm_receiver_writes_one_row_per_message_to_postgres(
    kafka_broker, make_topic, group_id, consumers, postgres_database, tmp_path
):
    count = 60
    topic = make_topic(partitions=3)
    postgres_database.migrate(env=ORDERS_SETTINGS)
    orders = [{"id": i, "order_id": f"P-{i}", "customer": f"c{i}@example.com", "total_cents": i} for i in range(count)]
    produce(kafka_broker.bootstrap_servers, topic, orders, headers=[("ce_type", ORDER_PLACED)])

    consumer = consumers.start(
        kafka_broker.bootstrap_servers,
        topic,
        tmp_path / "record",
        "--max-messages",
        str(count),
        group=group_id,
        env={**ORDERS_SETTINGS, **postgres_database.env},
    )

    assert consumer.wait(90) == 0, consumer.output()
    rows = postgres_database.execute("SELECT count(*), count(DISTINCT order_id), sum(total_cents) FROM orders_order")
    assert rows == [(count, count, sum(range(count)))]
