"""
A real, single-node Apache Kafka broker for tests and demos, with no Docker.

Apache Kafka's jars come from :mod:`kafka_consumer_app.testing.jars`; the broker runs in KRaft
mode (broker and controller in one JVM) on 127.0.0.1, on free ports, with a temporary log directory.
It runs :data:`~kafka_consumer_app.testing.jars.DEFAULT_KAFKA_VERSION` unless ``version=`` or
``$KAFKA_CONSUMER_APP_KAFKA_VERSION`` names another release, 3.9 or newer.

The test suite's session fixture uses the class (also importable from
:mod:`kafka_consumer_app.testing.broker`, which is the command line as well)::

    python -m kafka_consumer_app.testing.broker fetch [--version 3.9.2]
    python -m kafka_consumer_app.testing.broker run --topic orders:3 --ready-file /tmp/kafka.env

``run`` prints ``KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:<port>`` and serves until SIGTERM/SIGINT.

By default the broker has one PLAINTEXT listener. For security tests, ``plain_users`` and
``scram_users`` add a ``SASL_PLAINTEXT`` listener (SASL/PLAIN users in its JAAS config,
SCRAM-SHA-512 credentials written when the log dir is formatted), and ``tls=True`` adds a
``SASL_SSL`` listener whose self-signed certificate (made with the JDK's ``keytool``) is in
:attr:`LocalKafkaBroker.ca_file`. The PLAINTEXT listener stays, for test setup::

    broker = LocalKafkaBroker(plain_users={"alice": "pw1"}, scram_users={"bob": "pw2"}, tls=True)
    broker.start()
    broker.sasl_bootstrap_servers      # 127.0.0.1:<port>, security.protocol SASL_PLAINTEXT
    broker.sasl_ssl_bootstrap_servers  # 127.0.0.1:<port>, SASL_SSL, ssl.ca.location broker.ca_file
"""

from __future__ import annotations

import secrets
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from kafka_consumer_app.testing.jars import (
    CREDENTIAL,
    LOG4J2_PROPERTIES,
    SASL_MECHANISMS,
    BrokerError,
    default_properties,
    fetch,
    free_port,
    kafka_version,
    make_certificate,
    random_cluster_id,
)
from kafka_consumer_app.testing.servers import LocalServer

__all__ = ["LocalKafkaBroker"]


class LocalKafkaBroker(LocalServer):
    """
    One KRaft broker+controller JVM on 127.0.0.1.

    ``start()`` returns once the broker answers metadata requests; ``stop()`` shuts it down
    and ``start()`` again restarts it on the same ports with the same data, as a real
    broker restart would. Use it as a context manager to remove its data afterwards.
    ``version`` is the Apache Kafka release to run (see :func:`kafka_version`).
    """

    def __init__(
        self,
        port: int | None = None,
        extra_properties: dict[str, str] | None = None,
        heap: str = "512m",
        *,
        plain_users: Mapping[str, str] | None = None,
        scram_users: Mapping[str, str] | None = None,
        tls: bool = False,
        version: str | None = None,
    ) -> None:
        self.version = kafka_version(version)
        self.plain_users = dict(plain_users or {})
        self.scram_users = dict(scram_users or {})
        for name, password in {**self.plain_users, **self.scram_users}.items():
            if not (CREDENTIAL.match(name) and CREDENTIAL.match(password)):
                raise ValueError(f"user {name!r}: names and passwords may only use letters, digits and ._~!@#%^&*+-")
        if tls and not self.sasl_enabled:
            raise ValueError("tls=True adds a SASL_SSL listener: give plain_users or scram_users too")
        self.port = port or free_port()
        self.controller_port = free_port()
        self.sasl_port = free_port() if self.sasl_enabled else None
        self.sasl_ssl_port = free_port() if tls else None
        self.extra_properties = dict(extra_properties or {})
        self.heap = heap
        self.workdir = Path(tempfile.mkdtemp(prefix="kafka-broker-"))
        self.process: subprocess.Popen[bytes] | None = None
        self._formatted = False
        self._keystore_password = secrets.token_hex(12)

    @property
    def bootstrap_servers(self) -> str:
        """The ``host:port`` clients connect to (the PLAINTEXT listener)."""
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_enabled(self) -> bool:
        """Whether the broker has SASL listeners (it was given users)."""
        return bool(self.plain_users or self.scram_users)

    @property
    def sasl_bootstrap_servers(self) -> str:
        """The ``host:port`` of the SASL_PLAINTEXT listener (PLAIN and SCRAM-SHA-512)."""
        if self.sasl_port is None:
            raise BrokerError("this broker has no SASL listener: pass plain_users or scram_users")
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def sasl_ssl_bootstrap_servers(self) -> str:
        """The ``host:port`` of the SASL_SSL listener (PLAIN and SCRAM-SHA-512 over TLS)."""
        if self.sasl_ssl_port is None:
            raise BrokerError("this broker has no SASL_SSL listener: pass tls=True")
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def ca_file(self) -> Path:
        """PEM file of the broker's self-signed certificate, for the client's ``ssl.ca.location``."""
        return self.workdir / "tls" / "broker-ca.pem"

    @property
    def log_file(self) -> Path:
        """The broker's own log, useful when a test fails."""
        return self.workdir / "logs" / "broker.log"

    def properties(self) -> dict[str, str]:
        """The broker's server.properties as a dict."""
        listeners = {"PLAINTEXT": self.port}
        if self.sasl_port is not None:
            listeners["SASL_PLAINTEXT"] = self.sasl_port
        if self.sasl_ssl_port is not None:
            listeners["SASL_SSL"] = self.sasl_ssl_port
        advertised = ",".join(f"{name}://127.0.0.1:{port}" for name, port in listeners.items())
        props = default_properties(self.version)
        props.update(
            {
                "listeners": f"{advertised},CONTROLLER://127.0.0.1:{self.controller_port}",
                "advertised.listeners": advertised,
                # Each client listener is named after its protocol; the controller's is PLAINTEXT.
                "listener.security.protocol.map": ",".join(
                    [*(f"{name}:{name}" for name in listeners), "CONTROLLER:PLAINTEXT"]
                ),
                "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
                "log.dirs": str(self.workdir / "data"),
            }
        )
        props.update(self._security_properties(list(listeners)[1:]))
        props.update(self.extra_properties)
        return props

    def _security_properties(self, sasl_listeners: list[str]) -> dict[str, str]:
        """JAAS and TLS settings of the SASL listeners (none without users)."""
        if not sasl_listeners:
            return {}
        plain_users = "".join(f' user_{name}="{password}"' for name, password in self.plain_users.items())
        props = {"sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS)}
        for listener in sasl_listeners:
            prefix = f"listener.name.{listener.lower()}"
            props[f"{prefix}.plain.sasl.jaas.config"] = (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required{plain_users};"
            )
            props[f"{prefix}.scram-sha-512.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
        if self.sasl_ssl_port is not None:
            props.update(
                {
                    "ssl.keystore.type": "PKCS12",
                    "ssl.keystore.location": str(self.workdir / "tls" / "broker.p12"),
                    "ssl.keystore.password": self._keystore_password,
                    "ssl.key.password": self._keystore_password,
                }
            )
        return props

    def _make_certificate(self) -> None:
        """The TLS listener's self-signed certificate, made once per broker directory."""
        make_certificate(self.workdir / "tls" / "broker.p12", self.ca_file, self._keystore_password)

    def _format_command(self, lib: Path, config: Path) -> list[str]:
        command = ["kafka.tools.StorageTool", "format", "-t", random_cluster_id(), "-c", str(config)]
        for name, password in self.scram_users.items():
            command += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        return self._java(lib, *command)

    def _write_config(self) -> Path:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        (self.workdir / "log4j2.properties").write_text(LOG4J2_PROPERTIES, encoding="utf-8")
        path = self.workdir / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in self.properties().items()), encoding="utf-8")
        return path

    def _java(self, lib: Path, *args: str) -> list[str]:
        return [
            "java",
            f"-Xmx{self.heap}",
            "-Xss1m",
            "-XX:+UseG1GC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.workdir / 'logs'}",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "-cp",
            f"{lib}/*",
            *args,
        ]

    def start(self, timeout: float = 90.0) -> LocalKafkaBroker:
        """Start (or restart) the broker and wait until it serves metadata."""
        lib = fetch(version=self.version)
        if self.sasl_ssl_port is not None:
            self._make_certificate()
        config = self._write_config()
        if not self._formatted:
            result = subprocess.run(
                self._format_command(lib, config),
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise BrokerError(
                    f"formatting the Kafka log dir failed: {result.stdout[-1000:]}{result.stderr[-1000:]}"
                )
            self._formatted = True
        output = open(self.workdir / "logs" / "stdout.log", "ab")  # noqa: SIM115 (kept open for the process)
        self.process = subprocess.Popen(
            self._java(lib, "kafka.Kafka", str(config)),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        output.close()
        self._wait_until_ready(timeout)
        return self

    def _wait_until_ready(self, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient  # pylint: disable=import-outside-toplevel

        deadline = time.monotonic() + timeout
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise BrokerError(f"the Kafka broker exited during startup; see {self.log_file}:\n{self._log_tail()}")
            try:
                metadata = admin.list_topics(timeout=1.0)
                if metadata.brokers:
                    return
            except Exception:
                time.sleep(0.2)
        self.stop()
        raise BrokerError(
            f"the Kafka broker did not answer within {timeout:g}s; see {self.log_file}:\n{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        for path in (self.log_file, self.workdir / "logs" / "stdout.log"):
            if path.exists():
                return path.read_text(encoding="utf-8", errors="replace")[-3000:]
        return "(no log)"

    def create_topic(self, name: str, partitions: int = 1, config: dict[str, str] | None = None) -> None:
        """Create a topic and wait until every partition has a leader."""
        from confluent_kafka.admin import AdminClient  # pylint: disable=import-outside-toplevel
        from confluent_kafka.cimpl import NewTopic  # pylint: disable=import-outside-toplevel

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
            operation_timeout=30,
        )
        futures[name].result(timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            topic = admin.list_topics(name, timeout=5).topics.get(name)
            ready = topic is not None and topic.error is None and len(topic.partitions) == partitions
            if (
                ready
                and topic is not None
                and all(p.leader >= 0 and p.error is None for p in topic.partitions.values())
            ):
                return
            time.sleep(0.1)
        raise BrokerError(f"topic {name} was created but its partitions got no leader within 30s")
