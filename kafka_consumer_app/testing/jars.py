"""
Apache Kafka for the local broker: its jars, fetched once with Maven into a git-ignored cache,
the log and broker configuration a single fast test node runs with, free local ports, and the
TLS listener's certificate (made with the JDK's keytool).

``python -m kafka_consumer_app.testing.broker fetch`` (``make kafka``) calls :func:`fetch`; the
broker in :mod:`kafka_consumer_app.testing.broker` runs from what it fetched. Java 17+ and Maven
must be on the PATH.

The release is :data:`DEFAULT_KAFKA_VERSION` unless ``$KAFKA_CONSUMER_APP_KAFKA_VERSION`` or an
explicit ``version`` names another one, 3.9 or newer (the first release with everything the
single-node KRaft setup below uses). Each release's jars are kept in a directory of their own,
so several can be cached side by side.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

#: The Apache Kafka release the broker runs unless told otherwise; 4.x runs on Java 17.
DEFAULT_KAFKA_VERSION = "4.4.0"
#: The environment variable that picks another release for the tests, demos and benchmarks.
KAFKA_VERSION_ENV = "KAFKA_CONSUMER_APP_KAFKA_VERSION"
#: The oldest release the broker's configuration is written for.
OLDEST_KAFKA_VERSION = (3, 9)
#: SLF4J binding so that the broker's own log reaches its log file.
LOG4J_VERSION = "2.24.3"

POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kafka-consumer-app.local</groupId>
  <artifactId>local-kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


class BrokerError(RuntimeError):
    """The local broker could not be fetched or started; the message says why and what to do."""


def cache_dir() -> Path:
    """Where the Kafka jars are kept: ``$KAFKA_CONSUMER_APP_CACHE`` or ``./.cache/kafka``."""
    return Path(os.environ.get("KAFKA_CONSUMER_APP_CACHE") or Path.cwd() / ".cache" / "kafka").resolve()


def kafka_version(version: str | None = None) -> str:
    """The release to run: ``version``, else ``$KAFKA_CONSUMER_APP_KAFKA_VERSION``, else the default."""
    chosen = (version or os.environ.get(KAFKA_VERSION_ENV) or DEFAULT_KAFKA_VERSION).strip()
    parts = version_tuple(chosen)
    if parts < OLDEST_KAFKA_VERSION:
        oldest = ".".join(map(str, OLDEST_KAFKA_VERSION))
        raise BrokerError(f"Apache Kafka {chosen} is not supported by the local broker; use {oldest} or newer")
    return chosen


def version_tuple(version: str) -> tuple[int, ...]:
    """``"3.9.2"`` as ``(3, 9, 2)``; anything but dotted numbers is refused with a :class:`BrokerError`."""
    if not re.fullmatch(r"\d+(\.\d+){1,2}", version):
        raise BrokerError(f"{version!r} is not an Apache Kafka release such as {DEFAULT_KAFKA_VERSION}")
    return tuple(int(part) for part in version.split("."))


def fetch(directory: Path | None = None, quiet: bool = True, version: str | None = None) -> Path:
    """Fetch one Apache Kafka release's jars with Maven (once) and return the directory holding them."""
    release = kafka_version(version)
    home = (directory or cache_dir()) / f"kafka-{release}"
    lib = home / "lib"
    marker = home / ".complete"
    if marker.exists():
        return lib
    if shutil.which("mvn") is None:
        raise BrokerError("Maven ('mvn') is not on the PATH; install Maven 3 to fetch Apache Kafka's jars")
    if shutil.which("java") is None:
        raise BrokerError("Java ('java') is not on the PATH; install Java 17 or newer to run Apache Kafka")
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(POM.format(kafka=release, log4j=LOG4J_VERSION), encoding="utf-8")
    command = ["mvn", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={lib}"]
    if quiet:
        command.insert(1, "-q")
    result = subprocess.run(command, cwd=home, capture_output=quiet, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout or "")[-2000:] if quiet else ""
        raise BrokerError(f"Maven could not fetch org.apache.kafka:kafka_2.13:{release}:\n{tail}")
    marker.write_text(release, encoding="utf-8")
    return lib


LOG4J2_PROPERTIES = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/broker.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.state.name = state.change.logger
logger.state.level = warn
logger.controller.name = org.apache.kafka.controller
logger.controller.level = warn
"""

#: Broker settings tuned for one node and fast tests. Topics are never auto-created, so
#: tests about missing topics (and missing dead-letter topics) mean what they say.
DEFAULT_PROPERTIES = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "auto.create.topics.enable": "false",
    "num.partitions": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    # KIP-848 groups take their session and heartbeat from the broker (or the group's own config,
    # within these bounds); the defaults' minimums (45 s and 5 s) would forbid the short sessions that
    # keep the tests of killed members short. The defaults themselves stay Kafka's.
    "group.consumer.min.session.timeout.ms": "6000",
    "group.consumer.min.heartbeat.interval.ms": "500",
    "log.retention.hours": "2",
}

#: Settings that only 4.x brokers know: the share groups' state topic (KIP-932), which a single
#: node cannot replicate three times. 3.9 has no share coordinator and would log them as unknown.
KAFKA_4_PROPERTIES = {
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
}


#: Share groups (KIP-932) are on by default from Kafka 4.2 (a new cluster is formatted with the
#: ``share.version`` feature, and the group coordinator serves the share protocol): nothing enables
#: them. These only make a share consumer's first fetch come in seconds rather than about a minute:
#: its membership and assignment move at the heartbeat and assignment intervals (5 s and more by
#: default). A 4.2 or 4.3 broker logs the assignment keys as unknown and ignores them.
SHARE_GROUP_PROPERTIES = {
    "group.share.heartbeat.interval.ms": "1000",
    "group.share.min.heartbeat.interval.ms": "500",
    "group.share.assignment.interval.ms": "500",
    "group.share.min.assignment.interval.ms": "100",
}

#: The oldest release with share groups on by default.
SHARE_GROUPS_SINCE = (4, 2)


def share_groups(version: str) -> bool:
    """Whether Apache Kafka ``version`` serves share groups (KIP-932) as it starts, with nothing to enable."""
    return version_tuple(version) >= SHARE_GROUPS_SINCE


def default_properties(version: str) -> dict[str, str]:
    """The single-node settings that ``version`` understands (see :data:`DEFAULT_PROPERTIES`)."""
    props = dict(DEFAULT_PROPERTIES)
    if version_tuple(version) >= (4,):
        props.update(KAFKA_4_PROPERTIES)
    if share_groups(version):
        props.update(SHARE_GROUP_PROPERTIES)
    return props


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_certificate(keystore: Path, ca_file: Path, password: str) -> None:
    """A self-signed certificate for 127.0.0.1 and localhost, valid two days, in ``keystore`` and as PEM."""
    if keystore.exists():
        return
    if shutil.which("keytool") is None:
        raise BrokerError("the JDK's 'keytool' is not on the PATH; it makes the TLS listener's certificate")
    keystore.parent.mkdir(parents=True, exist_ok=True)
    store = ["-keystore", str(keystore), "-storetype", "PKCS12", "-storepass", password]
    generate = ["keytool", "-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048"]
    generate += ["-validity", "2", "-dname", "CN=localhost", "-ext", "SAN=ip:127.0.0.1,dns:localhost"]
    generate += ["-ext", "BC=ca:true", "-keypass", password, *store]
    export = ["keytool", "-exportcert", "-rfc", "-alias", "broker", "-file", str(ca_file), *store]
    for command in (generate, export):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(f"keytool failed: {result.stdout[-1000:]}{result.stderr[-1000:]}")


def random_cluster_id() -> str:
    """A new KRaft cluster id for StorageTool's format."""
    # Like Kafka's Uuid.randomUuid(): never a leading '-', which StorageTool would read as an option.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


#: The SASL mechanisms a broker with users enables on its SASL listeners.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-512")
#: User names and passwords must be simple enough for JAAS and for StorageTool's --add-scram syntax.
CREDENTIAL = re.compile(r"^[A-Za-z0-9._~!@#%^&*+-]+$")
