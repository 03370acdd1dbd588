"""
A real schema registry for tests and demos, with no Docker: Apicurio Registry on 127.0.0.1.

Apicurio Registry serves the Confluent Schema Registry API under ``/apis/ccompat/v7``, which is
what confluent-kafka's ``SchemaRegistryClient`` (and so edx-event-bus-kafka's producer and this
app's Avro decoding) speaks. Its release distribution, a ready-to-run Quarkus application
(``io.apicurio:apicurio-registry-app:<version>:tar.gz:all``), is fetched once with Maven from
Maven Central and unpacked into a git-ignored cache, next to the Kafka jars
(``$KAFKA_CONSUMER_APP_CACHE``, see :mod:`kafka_consumer_app.testing.jars`).

It needs Java 21 or newer. The ``java`` used is the first of ``$KAFKA_CONSUMER_APP_REGISTRY_JAVA``,
``$JAVA_HOME/bin/java``, the ``java`` on the PATH and the JDKs in ``/usr/lib/jvm`` that is new enough.
Storage is H2 in memory: a stopped registry forgets its schemas, and a new one starts empty.

The same module serves the test suite's session fixture and the command line::

    python -m kafka_consumer_app.testing.registry fetch
    python -m kafka_consumer_app.testing.registry run --ready-file registry.env

``run`` prints ``SCHEMA_REGISTRY_URL=http://127.0.0.1:<port>/apis/ccompat/v7`` and serves until
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import functools
import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from kafka_consumer_app.testing.jars import cache_dir, free_port
from kafka_consumer_app.testing.servers import LocalServer, serve_until_stopped

#: The Apicurio Registry release the tests run; 3.x serves the Confluent API under API_PATH.
DEFAULT_REGISTRY_VERSION = "3.3.3"
#: Its Maven coordinates: the release distribution (Quarkus' fast-jar layout) that Maven Central holds.
ARTIFACT = "io.apicurio:apicurio-registry-app:{version}:tar.gz:all"
#: Where Apicurio Registry serves the Confluent Schema Registry API (the clients' URL ends with it).
API_PATH = "/apis/ccompat/v7"
#: Apicurio Registry 3.3 is compiled for Java 21.
MIN_JAVA = 21
#: What Quarkus logs when a port it is given is taken.
PORT_TAKEN = "seems to be in use by another process"
#: An explicit ``java`` for the registry, when the default one is older than MIN_JAVA.
JAVA_ENV = "KAFKA_CONSUMER_APP_REGISTRY_JAVA"


class RegistryError(RuntimeError):
    """The local registry could not be fetched or started; the message says why and what to do."""


def fetch(directory: Path | None = None, quiet: bool = True, version: str = DEFAULT_REGISTRY_VERSION) -> Path:
    """Fetch and unpack Apicurio Registry's distribution with Maven (once); return the directory holding it."""
    home = (directory or cache_dir()) / f"apicurio-registry-{version}"
    if (home / ".complete").exists():
        return home
    if shutil.which("mvn") is None:
        raise RegistryError("Maven ('mvn') is not on the PATH; install Maven 3 to fetch Apicurio Registry")
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{home.name}-", dir=home.parent) as scratch:
        artifact = ARTIFACT.format(version=version)
        # -C: a checksum that does not match fails the download instead of warning.
        command = ["mvn", "-B", "-C", "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={scratch}"]
        if quiet:
            command.insert(1, "-q")
        result = subprocess.run(command, cwd=scratch, capture_output=quiet, text=True, check=False)
        archives = list(Path(scratch).glob("*.tar.gz"))
        if result.returncode != 0 or len(archives) != 1:
            tail = (result.stdout or "")[-2000:] if quiet else ""
            raise RegistryError(f"Maven could not fetch {artifact}:\n{tail}")
        unpacked = Path(scratch) / "unpacked"
        with tarfile.open(archives[0]) as archive:
            archive.extractall(unpacked, filter="data")
        if not (unpacked / "quarkus-run.jar").exists():
            raise RegistryError(f"{artifact} has no quarkus-run.jar; it is not the distribution this module runs")
        (unpacked / ".complete").write_text(version, encoding="utf-8")
        if (home / ".complete").exists():  # another process fetched it meanwhile
            return home
        shutil.rmtree(home, ignore_errors=True)  # an incomplete earlier attempt
        unpacked.rename(home)
    return home


def java_major(java: str) -> int | None:
    """The major version of the ``java`` executable at ``java``, or None if it does not run."""
    try:
        result = subprocess.run(
            [java, "-XshowSettings:properties", "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"java\.specification\.version = (\d+)", result.stderr)
    return int(found.group(1)) if found else None


@functools.lru_cache(maxsize=1)
def find_java() -> str:
    """The first ``java`` new enough for the registry (see the module), or a RegistryError naming what was found."""
    explicit = os.environ.get(JAVA_ENV)
    if explicit:
        if (java_major(explicit) or 0) < MIN_JAVA:
            raise RegistryError(f"${JAVA_ENV} ({explicit}) is not a Java {MIN_JAVA} or newer")
        return explicit
    candidates = [Path(os.environ["JAVA_HOME"]) / "bin" / "java"] if os.environ.get("JAVA_HOME") else []
    candidates += [Path(found) for found in [shutil.which("java")] if found]
    candidates += sorted(Path(path) for path in glob.glob("/usr/lib/jvm/*/bin/java"))
    seen: dict[str, int | None] = {}
    for candidate in candidates:
        major = seen.setdefault(str(candidate), java_major(str(candidate)))
        if major is not None and major >= MIN_JAVA:
            return str(candidate)
    versions = ", ".join(f"{path} ({major or 'does not run'})" for path, major in seen.items()) or "no java at all"
    raise RegistryError(
        f"Apicurio Registry needs Java {MIN_JAVA} or newer, and found {versions}; install one, "
        f"or set ${JAVA_ENV} to its java executable"
    )


class LocalSchemaRegistry(LocalServer):
    """
    One Apicurio Registry JVM on 127.0.0.1, on free ports, with in-memory storage.

    ``start()`` returns once the Confluent API answers; ``stop()`` shuts it down (its schemas
    are gone). Use it as a context manager to remove its directory afterwards.
    """

    def __init__(self, heap: str = "256m", version: str = DEFAULT_REGISTRY_VERSION) -> None:
        self.version = version
        self.heap = heap
        self.port = free_port()
        self.management_port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="schema-registry-"))
        self.process: subprocess.Popen[bytes] | None = None
        #: Seconds the last ``start()`` took until the API answered.
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        """The URL clients are given: ``SCHEMA_REGISTRY['URL']``, ``EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL``."""
        return f"http://127.0.0.1:{self.port}{API_PATH}"

    @property
    def log_file(self) -> Path:
        """The registry's console output, useful when a test fails."""
        return self.workdir / "registry.log"

    def properties(self) -> dict[str, str]:
        """The Quarkus and Apicurio settings the registry runs with (as ``-D`` system properties)."""
        return {
            "quarkus.http.host": "127.0.0.1",
            "quarkus.http.port": str(self.port),
            # The health endpoints' own listener: local too, and on a free port (it defaults to 0.0.0.0:9000).
            "quarkus.management.host": "127.0.0.1",
            "quarkus.management.port": str(self.management_port),
            "apicurio.storage.kind": "sql",
            "apicurio.storage.sql.kind": "h2",
            "apicurio.datasource.url": "jdbc:h2:mem:registry",
            # The default pool keeps 20 connections open; a test registry needs two.
            "apicurio.datasource.jdbc.initial-size": "2",
            "apicurio.datasource.jdbc.min-size": "2",
            "apicurio.storage.snapshot.location": str(self.workdir),
            "quarkus.http.access-log.enabled": "false",
            'quarkus.log.category."io.apicurio.registry.logging.audit".level': "WARN",
        }

    def command(self) -> list[str]:
        """The ``java`` command line that runs the fetched distribution."""
        home = fetch(version=self.version)
        return [
            find_java(),
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            *(f"-D{key}={value}" for key, value in self.properties().items()),
            "-jar",
            str(home / "quarkus-run.jar"),
        ]

    def start(self, timeout: float = 120.0) -> LocalSchemaRegistry:
        """Start the registry and wait until its Confluent API answers; a RegistryError with its log if not."""
        started = time.monotonic()
        try:
            self._launch(started + timeout, timeout)
        except RegistryError:
            if PORT_TAKEN not in self.log_file.read_text(encoding="utf-8", errors="replace"):
                raise
            # Another process took a port between free_port() and the bind: once more, on new ports.
            self.port, self.management_port = free_port(), free_port()
            self.log_file.unlink(missing_ok=True)
            self._launch(time.monotonic() + timeout, timeout)
        self.startup_seconds = time.monotonic() - started
        return self

    def _launch(self, deadline: float, timeout: float) -> None:
        command = self.command()
        with open(self.log_file, "ab") as output:
            self.process = subprocess.Popen(
                command, cwd=self.workdir, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_until_ready(deadline, timeout)

    def answers(self) -> bool:
        """Whether the Confluent API answers now (``GET /schemas/types``)."""
        try:
            with urllib.request.urlopen(f"{self.url}/schemas/types", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _wait_until_ready(self, deadline: float, timeout: float) -> None:
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RegistryError(f"Apicurio Registry exited during startup; see {self.log_file}:\n{self.log_tail()}")
            if self.answers():
                return
            time.sleep(0.2)
        self.stop()
        raise RegistryError(
            f"Apicurio Registry did not answer within {timeout:g}s; see {self.log_file}:\n{self.log_tail()}"
        )

    def log_tail(self) -> str:
        """The end of the registry's log."""
        if self.log_file.exists():
            return self.log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
        return "(no log)"

    def memory_kib(self) -> int | None:
        """The JVM's resident memory (VmRSS, KiB), where /proc has it."""
        if self.process is None:
            return None
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="utf-8")
        except OSError:
            return None
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(found.group(1)) if found else None


def main(argv: list[str] | None = None) -> int:
    """Command line: ``fetch`` the distribution, or ``run`` a registry until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m kafka_consumer_app.testing.registry", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="action", required=True)
    for name, text in (("fetch", "Fetch Apicurio Registry with Maven into the cache."), ("run", "Run a registry.")):
        action = sub.add_parser(name, help=text)
        action.add_argument("--version", default=DEFAULT_REGISTRY_VERSION, help="The Apicurio Registry release.")
        if name == "run":
            action.add_argument("--ready-file", type=Path, help="Write SCHEMA_REGISTRY_URL=... here once ready.")
    args = parser.parse_args(argv)
    try:
        if args.action == "fetch":
            print(f"Apicurio Registry {args.version} is in {fetch(quiet=False, version=args.version)}")
            print(f"It runs on {find_java()}")
            return 0
        return _run(args.version, args.ready_file)
    except RegistryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _run(version: str, ready_file: Path | None) -> int:
    with LocalSchemaRegistry(version=version) as registry:
        return serve_until_stopped(registry, [f"SCHEMA_REGISTRY_URL={registry.url}"], ready_file, "registry")


if __name__ == "__main__":
    sys.exit(main())
