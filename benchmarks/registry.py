"""
A minimal Confluent-compatible schema registry on 127.0.0.1, served by the orchestrator for the Open edX benchmark.

Why a server, not confluent-kafka's ``mock://`` registry: the mock keeps its schemas inside one
client object of one process, and the benchmark's producer and its three consumers are four
processes. Registering the schemas again in each consumer would give ids that agree only by
luck of registration order, and would hand each consumer a schema without the HTTP round trip
a real deployment makes. With one server, every consumer fetches each writer schema by id over
HTTP exactly as it would from Confluent's registry, once per schema id (the clients cache it),
so every contender pays the same registry cost, and it falls before or at the first message.

Only what the clients of this benchmark call is served, with the status codes and error
bodies of Confluent's API:

- ``POST /subjects/{subject}/versions``: register (the producer's ``AvroSerializer``);
- ``POST /subjects/{subject}``: look a schema up under a subject;
- ``GET /schemas/ids/{id}``: a schema by id (every ``AvroDeserializer``);
- anything else, e.g. ``GET /associations/...`` (confluent-kafka's default subject name
  strategy asks for topic associations first): 404, which the clients read as "none" and
  fall back to the topic name strategy.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


@dataclass
class SchemaStore:
    """Schemas by id, and each subject's versions (schema ids in registration order)."""

    schemas: list[dict[str, Any]] = field(default_factory=list)
    subjects: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, subject: str, schema: dict[str, Any]) -> dict[str, Any]:
        """Register ``schema`` under ``subject`` (idempotent, as Confluent's is); return the registered version."""
        with self.lock:
            schema_id = self._id_of(schema)
            if schema_id is None:
                self.schemas.append(schema)
                schema_id = len(self.schemas)
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return self._registered(subject, schema_id)

    def lookup(self, subject: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        """The registered version of ``schema`` under ``subject``, or None."""
        with self.lock:
            schema_id = self._id_of(schema)
            if schema_id is None or schema_id not in self.subjects.get(subject, []):
                return None
            return self._registered(subject, schema_id)

    def by_id(self, schema_id: int) -> dict[str, Any] | None:
        """The schema of ``schema_id`` as ``GET /schemas/ids/{id}`` returns it, or None."""
        with self.lock:
            if not 1 <= schema_id <= len(self.schemas):
                return None
            return dict(self.schemas[schema_id - 1])

    def _id_of(self, schema: dict[str, Any]) -> int | None:
        for index, known in enumerate(self.schemas):
            if known == schema:
                return index + 1
        return None

    def _registered(self, subject: str, schema_id: int) -> dict[str, Any]:
        version = self.subjects[subject].index(schema_id) + 1
        return {"subject": subject, "version": version, "id": schema_id, **self.schemas[schema_id - 1]}


def schema_of(body: dict[str, Any]) -> dict[str, Any]:
    """The parts of a request body that identify a schema (AVRO is the default type, and is left implicit)."""
    schema: dict[str, Any] = {"schema": body["schema"]}
    if body.get("schemaType", "AVRO") != "AVRO":
        schema["schemaType"] = body["schemaType"]
    if body.get("references"):
        schema["references"] = body["references"]
    return schema


class RegistryHandler(BaseHTTPRequestHandler):
    """The HTTP side: parse the path, call the store, answer in Confluent's JSON."""

    store: SchemaStore  # set on the subclass that :func:`schema_registry` makes

    def do_GET(self) -> None:
        """``GET /schemas/ids/{id}``; 404 for everything else."""
        parts = self._parts()
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
            schema = self.store.by_id(int(parts[2]))
            if schema is not None:
                self._answer(200, schema)
                return
            self._answer(404, {"error_code": 40403, "message": "Schema not found"})
            return
        self._answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

    def do_POST(self) -> None:
        """Register (``.../versions``) or look up (``/subjects/{subject}``) a schema."""
        parts = self._parts()
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
            self._answer(200, self.store.register(parts[1], schema_of(body)))
            return
        if len(parts) == 2 and parts[0] == "subjects":
            found = self.store.lookup(parts[1], schema_of(body))
            if found is None:
                self._answer(404, {"error_code": 40403, "message": "Schema not found"})
                return
            self._answer(200, found)
            return
        self._answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the benchmark's progress lines are on stderr too."""

    def _parts(self) -> list[str]:
        return [unquote(part) for part in urlsplit(self.path).path.split("/") if part]

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def schema_registry() -> Iterator[str]:
    """Serve a fresh registry on 127.0.0.1 (a free port) in a thread; yield its URL."""
    handler = type("BoundRegistryHandler", (RegistryHandler,), {"store": SchemaStore()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="schema-registry", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
