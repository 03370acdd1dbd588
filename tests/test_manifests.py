"""
The Kubernetes manifests: k8s/ is what the generator renders, every object is valid for Kubernetes and KEDA
(offline: bundled schemas, no cluster), names and labels stay within their limits, and the Deployment's exact
command and probe work against the real broker.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from io import StringIO
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from django.core.management import CommandError, call_command

from kafka_consumer_app.operations import manifests
from kafka_consumer_app.probe import default_heartbeat_file
from kafka_consumer_app.settings import kubernetes
from kafka_consumer_app.settings import topics as topic_settings

from .kafka_utils import ROOT, ConsumerProcess, committed, finished, produce, read_records, settings_env, wait_for

K8S = ROOT / "k8s"
KEDA_DATA = Path(__file__).resolve().parent / "data" / "keda"
#: The oldest and newest Kubernetes versions the manifests support. 1.25 is the first release with Pod Security
#: Admission (the restricted profile) generally available; 1.37 is the newest that kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.25", "1.37")
#: The oldest and newest KEDA releases whose CRDs are vendored in tests/data/keda (see its README).
KEDA_VERSIONS = ("v2.15.1", "v2.21.0")
CORE_KINDS = {"ConfigMap", "Deployment", "PodDisruptionBudget"}
KEDA_KINDS = {
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
}
#: Trigger metadata that both KEDA Kafka scalers read (pkg/scalers/kafka_scaler.go and apache_kafka_scaler.go, v2.21.0).
KEDA_KAFKA_METADATA = {
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "excludePersistentLag",
    "scaleToZeroOnInvalidOffset",
    "limitToPartitionsWithLag",
    "partitionLimitation",
    "sasl",
    "tls",
}
IMAGE = "registry.example.com/service:1.0.0"
# Kubernetes' own rules (k8s.io/apimachinery/pkg/util/validation).
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


# -- helpers ----------------------------------------------------------------------------------------------------


def load_documents(text: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(text) if document]


def committed_objects() -> list[dict[str, Any]]:
    """Every object of the committed k8s/ manifests."""
    return [item for path in manifest_files(K8S) for item in load_documents(path.read_text(encoding="utf-8"))]


def yaml_files(directory: Path) -> list[Path]:
    """The YAML files of a directory, without hidden ones (k8s/.checkov.yaml configures the security scan)."""
    return sorted(path for path in directory.glob("*.yaml") if not path.name.startswith("."))


def manifest_files(directory: Path) -> list[Path]:
    return [path for path in yaml_files(directory) if path.name != "kustomization.yaml"]


def committed_object(kind: str, name: str) -> dict[str, Any]:
    (found,) = [item for item in committed_objects() if item["kind"] == kind and item["metadata"]["name"] == name]
    return found


def rendered_objects(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Render in this process (with the current settings) and parse the YAML back, as kubectl would read it."""
    return load_documents(manifests.stream(manifests.render(*args, **kwargs)))


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [item for item in objects if item["kind"] == kind]


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


AWKWARD_TOPICS = {
    # Dots, underscores and capitals, which DNS names cannot hold; KEDA with Kafka's 'latest' reset policy.
    "Payments.v1_EU": {"PARTITIONS": 12, "KEDA": True, "CONSUMER_CONFIG": {"auto.offset.reset": "latest"}},
    # Kafka allows 249 characters; Kubernetes names and label values allow 63 and KEDA 54 here.
    "t" * 120 + ".long": {"PARTITIONS": 3, "REPLICAS": 3, "GROUP_ID": "g" * 100 + " with spaces/and:colons"},
    # Three topics that differ only in characters the names cannot keep must still render distinct names.
    "user.events": {},
    "user_events": {},
    # Scaled to zero, woken only by a backlog of more than 20, and counting every partition's lag.
    "user-events": {
        "KEDA": True,
        "PARTITIONS": 4,
        "MIN_REPLICAS": 0,
        "MAX_REPLICAS": 2,
        "ACTIVATION_LAG_THRESHOLD": 20,
        "LIMIT_TO_PARTITIONS_WITH_LAG": False,
        "EXCLUDE_PERSISTENT_LAG": False,
    },
}


@pytest.fixture
def awkward_settings(settings):
    """Settings with topic names and groups that stretch every naming rule, KEDA's apache-kafka scaler and SASL."""
    settings.KAFKA_CONSUMER = {
        **settings.KAFKA_CONSUMER,
        "HEARTBEAT_FILE": None,
        "TOPIC_PREFIX": "prod",
        "CONSUMER_CONFIG": {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.username": "user",
            "sasl.password": "not-rendered",
        },
        "TOPICS": AWKWARD_TOPICS,
        "MANIFESTS": {
            "APP_NAME": "a-service-name-of-exactly-forty-characte",
            "KEDA_SCALER": "apache-kafka",
            "KEDA_AUTH": {"username": "KAFKA_USERNAME", "password": "KAFKA_PASSWORD"},
            "ENV": {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"},
            "MEMORY_REQUEST": "300Mi",
        },
    }
    return settings


@pytest.fixture(params=["k8s", "awkward"])
def objects(request) -> list[dict[str, Any]]:
    """The objects to validate: the committed k8s/, and a rendering of the awkward settings."""
    if request.param == "k8s":
        return committed_objects()
    request.getfixturevalue("awkward_settings")
    return rendered_objects(IMAGE, namespace="prod-payments")


def strict_crd_schema(version: str, kind: str) -> dict[str, Any]:
    """The CRD's openAPIV3Schema, made strict as kubernetes-validate's schemas are: unknown fields are errors."""
    crd = yaml.safe_load((KEDA_DATA / version / KEDA_KINDS[kind]).read_text(encoding="utf-8"))
    (served,) = [item for item in crd["spec"]["versions"] if item["name"] == "v1alpha1"]

    def strict(node: Any) -> Any:
        if isinstance(node, list):
            return [strict(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: strict(value) for key, value in node.items()}
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        return node

    return strict(served["schema"]["openAPIV3Schema"])


def validate_keda(item: dict[str, Any], version: str) -> None:
    jsonschema.Draft7Validator(strict_crd_schema(version, item["kind"])).validate(item)


def metadata_problems(item: dict[str, Any]) -> list[str]:
    """Kubernetes' rules for names, labels and annotations, which its JSON schemas do not check."""
    found = []
    metadata = item["metadata"]
    name = metadata["name"]
    if not (DNS_LABEL.match(name) and len(name) <= manifests.MAX_NAME):
        found.append(f"name {name!r} is not a DNS label of at most {manifests.MAX_NAME} characters")
    if "namespace" in metadata and not (DNS_LABEL.match(metadata["namespace"]) and len(metadata["namespace"]) <= 63):
        found.append(f"namespace {metadata['namespace']!r}")
    maps = [("label", metadata.get("labels", {})), ("annotation", metadata.get("annotations", {}))]
    template = item.get("spec", {}).get("template", {}).get("metadata", {})
    maps += [("pod label", template.get("labels", {})), ("pod annotation", template.get("annotations", {}))]
    for what, mapping in maps:
        for key, value in mapping.items():
            prefix, _, key_name = key.rpartition("/")
            if prefix and not (DNS_SUBDOMAIN.match(prefix) and len(prefix) <= 253):
                found.append(f"{what} key prefix {prefix!r}")
            if not (QUALIFIED_NAME.match(key_name) and len(key_name) <= 63):
                found.append(f"{what} key {key!r}")
            if not isinstance(value, str):
                found.append(f"{what} {key!r} is not a string")
            elif "label" in what and not (LABEL_VALUE.match(value) and len(value) <= 63):
                found.append(f"{what} {key}={value!r} is not a valid label value")
    return found


# -- k8s/ is what the generator renders ------------------------------------------------------------------------


def test_the_committed_manifests_are_what_make_manifests_renders(tmp_path):
    """Regenerate with `make manifests` and commit k8s/ when this fails."""
    out = tmp_path / "k8s"
    result = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "render-manifests",
            f"MANIFESTS_DIR={out}",
            f"MANIFESTS_PYTHON={sys.executable}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = {path.name: path.read_text(encoding="utf-8") for path in yaml_files(out)}
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in yaml_files(K8S)}
    assert sorted(on_disk) == sorted(rendered), "k8s/ has other files than the generator renders: run `make manifests`"
    stale = [name for name in rendered if rendered[name] != on_disk[name]]
    assert not stale, f"k8s/{', k8s/'.join(stale)} differ from what the settings render: run `make manifests`"


def test_the_example_manifests_cover_two_topics_one_scaled_by_keda():
    items = committed_objects()
    deployments = of_kind(items, "Deployment")
    assert {container_of(d)["command"][-1] for d in deployments} == {"orders", "audit-log"}
    (scaled,) = of_kind(items, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "example-service-orders"
    assert len(of_kind(items, "PodDisruptionBudget")) == 2 and len(of_kind(items, "TriggerAuthentication")) == 1


def test_the_kustomization_lists_every_manifest_and_kubectl_kustomize_renders_them_all():
    """
    kustomization.yaml names every manifest file. Where kubectl exists (it does on this project's machines),
    `kubectl kustomize k8s/` must also render exactly the objects of those files; without kubectl only the
    listing is checked.
    """
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert sorted(kustomization["resources"]) == [path.name for path in manifest_files(K8S)]
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

    def key(item: dict[str, Any]) -> tuple[str, str]:
        return item["kind"], item["metadata"]["name"]

    assert sorted(load_documents(result.stdout), key=key) == sorted(committed_objects(), key=key)


# -- validity: Kubernetes and KEDA schemas, names and labels ---------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_core_object_is_valid_for_the_oldest_and_newest_kubernetes(objects, version):
    core = [item for item in objects if item["kind"] in CORE_KINDS]
    assert {item["kind"] for item in objects} <= CORE_KINDS | set(KEDA_KINDS), "a kind no test validates"
    assert {item["kind"] for item in core} == CORE_KINDS
    for item in core:
        assert kubernetes_validate.validate(item, version, strict=True) == version


@pytest.mark.parametrize("version", KEDA_VERSIONS)
def test_every_keda_object_matches_kedas_crd_schema(objects, version):
    keda = [item for item in objects if item["kind"] in KEDA_KINDS]
    assert {item["kind"] for item in keda} == set(KEDA_KINDS)
    for item in keda:
        validate_keda(item, version)


def test_the_validators_reject_what_kubernetes_and_keda_would():
    """The checks above can fail: an unknown field, a wrong type, a number where KEDA wants a string."""
    deployment = copy.deepcopy(committed_object("Deployment", "example-service-orders"))
    container_of(deployment)["livenessprobe"] = container_of(deployment).pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    budget = copy.deepcopy(committed_object("PodDisruptionBudget", "example-service-orders"))
    budget["spec"]["maxUnavailable"] = [1]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(budget, KUBERNETES_VERSIONS[-1], strict=True)
    scaled = copy.deepcopy(committed_object("ScaledObject", "example-service-orders"))
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 50
    with pytest.raises(jsonschema.ValidationError):
        validate_keda(scaled, KEDA_VERSIONS[0])
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = "50"
    scaled["spec"]["maxReplicas"] = 6
    with pytest.raises(jsonschema.ValidationError):
        validate_keda(scaled, KEDA_VERSIONS[-1])


def test_names_labels_and_annotations_follow_kubernetes_rules(objects):
    problems = {f"{item['kind']}/{item['metadata']['name']}": metadata_problems(item) for item in objects}
    assert {name: found for name, found in problems.items() if found} == {}


def test_keda_trigger_metadata_is_what_the_kafka_scalers_read(objects):
    for scaled in of_kind(objects, "ScaledObject"):
        (trigger,) = scaled["spec"]["triggers"]
        metadata = trigger["metadata"]
        assert trigger["type"] in kubernetes.KEDA_SCALERS
        assert set(metadata) <= KEDA_KAFKA_METADATA
        assert int(metadata["lagThreshold"]) > 0
        assert metadata["offsetResetPolicy"] in ("earliest", "latest")
        assert metadata.get("sasl", "plaintext") in ("plaintext", "scram_sha256", "scram_sha512", "gssapi")
        assert metadata.get("tls", "enable") in ("enable", "disable")
    for auth in of_kind(objects, "TriggerAuthentication"):
        assert {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]} <= set(kubernetes.KEDA_AUTH_PARAMETERS)


def test_awkward_topic_names_get_distinct_bounded_names_with_exact_values_in_annotations(awkward_settings):
    items = rendered_objects(IMAGE)
    deployments = {d["metadata"]["annotations"]["kafka-consumer-app/topic"]: d for d in of_kind(items, "Deployment")}
    assert set(deployments) == set(AWKWARD_TOPICS)
    names = [d["metadata"]["name"] for d in deployments.values()]
    assert len(set(names)) == len(names)
    assert deployments["user-events"]["metadata"]["name"] == "a-service-name-of-exactly-forty-characte-user-events"
    for topic, deployment in deployments.items():
        name = deployment["metadata"]["name"]
        hashed = name.endswith("-" + manifests.short_hash(f"a-service-name-of-exactly-forty-characte-{topic}"))
        assert hashed == (topic != "user-events"), name  # shortened or changed names carry the hash
        assert container_of(deployment)["command"] == ["python", "manage.py", "consume_events", "--topic", topic]
        annotations = deployment["metadata"]["annotations"]
        assert annotations["kafka-consumer-app/kafka-topic"] == f"prod-{topic}"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["kafka-consumer-app/topic"] == manifests.label_value(topic)
    long_topic = "t" * 120 + ".long"
    group = AWKWARD_TOPICS[long_topic]["GROUP_ID"]
    assert deployments[long_topic]["metadata"]["annotations"]["kafka-consumer-app/group"] == group
    assert len(deployments[long_topic]["metadata"]["labels"]["kafka-consumer-app/group"]) == 63


# -- what the Deployment, the budget and the ScaledObject say --------------------------------------------------


def test_the_deployment_follows_the_rollout_security_and_resource_rules():
    deployment = committed_object("Deployment", "example-service-audit-log")
    spec, pod = deployment["spec"], deployment["spec"]["template"]["spec"]
    container = container_of(deployment)
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    assert container["command"] == ["python", "manage.py", "consume_events", "--topic", "audit-log"]
    assert "args" not in container
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "192Mi"},
        "limits": {"memory": "192Mi"},
    }
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["emptyDir"]
    assert container["envFrom"] == [
        {"configMapRef": {"name": "example-service"}},
        {"secretRef": {"name": "example-service-secrets"}},
    ]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert set(spec["selector"]["matchLabels"].items()) <= set(
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    budget = committed_object("PodDisruptionBudget", "example-service-audit-log")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": spec["selector"]}


def test_a_keda_scaled_deployment_has_no_replicas_and_keda_follows_the_consumer_settings():
    deployment = committed_object("Deployment", "example-service-orders")
    scaled = committed_object("ScaledObject", "example-service-orders")
    config_map = committed_object("ConfigMap", "example-service")
    assert "replicas" not in deployment["spec"]
    assert scaled["spec"]["minReplicaCount"] == 1 and scaled["spec"]["maxReplicaCount"] == 6  # PARTITIONS
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"] == {
        "bootstrapServers": config_map["data"]["KAFKA_BOOTSTRAP_SERVERS"],
        "consumerGroup": "example-service",
        "topic": "orders",
        "lagThreshold": "50",
        # The defaults: the first message wakes a consumer scaled to zero, no more replicas than partitions
        # with lag, and a partition whose offset does not move (stuck, retrying, paused) scales nothing.
        "activationLagThreshold": "0",
        "limitToPartitionsWithLag": "true",
        "excludePersistentLag": "true",
        "offsetResetPolicy": "earliest",  # the app's default auto.offset.reset
        "sasl": "scram_sha512",
        "tls": "enable",
    }
    auth = committed_object("TriggerAuthentication", trigger["authenticationRef"]["name"])
    secret = container_of(deployment)["envFrom"][1]["secretRef"]["name"]
    assert {(ref["parameter"], ref["name"], ref["key"]) for ref in auth["spec"]["secretTargetRef"]} == {
        ("username", secret, "KAFKA_USERNAME"),
        ("password", secret, "KAFKA_PASSWORD"),
    }


def test_keda_caps_replicas_at_the_partitions_and_follows_auto_offset_reset(awkward_settings):
    items = rendered_objects(IMAGE)
    scaled = {
        s["metadata"]["annotations"]["kafka-consumer-app/topic"]: s["spec"] for s in of_kind(items, "ScaledObject")
    }
    assert scaled["Payments.v1_EU"]["maxReplicaCount"] == 12
    assert scaled["Payments.v1_EU"]["triggers"][0]["metadata"]["offsetResetPolicy"] == "latest"
    assert scaled["Payments.v1_EU"]["triggers"][0]["type"] == "apache-kafka"
    assert (scaled["user-events"]["minReplicaCount"], scaled["user-events"]["maxReplicaCount"]) == (0, 2)
    assert scaled["user-events"]["triggers"][0]["metadata"]["sasl"] == "scram_sha256"


def test_the_keda_scaling_options_follow_each_topics_settings(awkward_settings):
    triggers = {
        s["metadata"]["annotations"]["kafka-consumer-app/topic"]: s["spec"]["triggers"][0]["metadata"]
        for s in of_kind(rendered_objects(IMAGE), "ScaledObject")
    }
    options = ("activationLagThreshold", "limitToPartitionsWithLag", "excludePersistentLag")
    assert {topic: tuple(metadata[o] for o in options) for topic, metadata in triggers.items()} == {
        "Payments.v1_EU": ("0", "true", "true"),
        "user-events": ("20", "false", "false"),
    }


def test_the_grace_period_and_liveness_budget_outlast_the_slowest_receiver(settings):
    settings.KAFKA_CONSUMER = {
        **settings.KAFKA_CONSUMER,
        "HEARTBEAT_FILE": None,
        "HEARTBEAT_MAX_AGE": 20,
        "TOPICS": {"slow": {"HANDLER_HARD_TIMEOUT": 200}, "fast": {"HANDLER_HARD_TIMEOUT": 5}},
    }
    deployments = {container_of(d)["command"][-1]: d for d in of_kind(rendered_objects(IMAGE), "Deployment")}
    poll = settings.KAFKA_CONSUMER["POLL_TIMEOUT"]
    for topic, hard in (("slow", 200), ("fast", 5)):
        pod = deployments[topic]["spec"]["template"]["spec"]
        liveness = pod["containers"][0]["livenessProbe"]
        assert pod["terminationGracePeriodSeconds"] > poll + hard
        # The kubelet restarts no earlier than max-age + (failureThreshold - 1) * period without a poll.
        assert 20 + (liveness["failureThreshold"] - 1) * liveness["periodSeconds"] > poll + hard
        assert liveness["failureThreshold"] >= 3
    assert deployments["slow"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 231


def test_the_manifests_are_the_same_under_either_group_protocol_and_name_no_session_option(settings):
    # Nothing rendered depends on the group's session: the grace period follows the slowest receiver, the
    # probes the loop's heartbeat, KEDA the committed offsets, which both protocols keep (ADR 13).
    topics = {"orders": {"KEDA": True, "PARTITIONS": 6}, "audit": {"REPLICAS": 2, "PARTITIONS": 3}}
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "HEARTBEAT_FILE": None, "TOPICS": topics}
    classic = manifests.stream(manifests.render(IMAGE))
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "CONSUMER_CONFIG": {"group.protocol": "consumer"}}
    kip848 = manifests.stream(manifests.render(IMAGE))
    assert kip848 == classic
    assert "session.timeout" not in kip848 and "heartbeat.interval" not in kip848


# -- settings validation and the command -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kafka_consumer", "check_id"),
    [
        ({"MANIFESTS": ["APP_NAME"]}, "E060"),
        ({"MANIFESTS": {"REPLICA": 2}}, "E060"),
        ({"TOPICS": {"t": {"LAG_THRESHOLD": 0}}}, "E061"),
        ({"TOPICS": {"t": {"PARTITIONS": "6"}}}, "E061"),
        ({"TOPICS": {"t": {"REPLICAS": 4, "PARTITIONS": 3}}}, "E062"),
        ({"MANIFESTS": {"REPLICAS": 4}, "TOPICS": {"t": {"PARTITIONS": 3}}}, "E062"),
        ({"TOPICS": {"t": {"KEDA": True, "PARTITIONS": 3, "MAX_REPLICAS": 4}}}, "E062"),
        ({"TOPICS": {"t": {"KEDA": True}}}, "E063"),
        ({"TOPICS": {"t": {"KEDA": "yes", "PARTITIONS": 3}}}, "E063"),
        ({"TOPICS": {"t": {"ACTIVATION_LAG_THRESHOLD": -1}}}, "E061"),
        ({"MANIFESTS": {"ACTIVATION_LAG_THRESHOLD": "10"}}, "E061"),
        ({"TOPICS": {"t": {"LIMIT_TO_PARTITIONS_WITH_LAG": "true"}}}, "E063"),
        ({"MANIFESTS": {"EXCLUDE_PERSISTENT_LAG": 1}}, "E063"),
        ({"TOPICS": {"t": {"MEMORY_REQUEST": "lots"}}}, "E064"),
        ({"TOPICS": {"t": {"MEMORY_REQUEST": "1Gi", "MEMORY_LIMIT": "512Mi"}}}, "E064"),
        ({"TOPICS": {"t": {"CPU_REQUEST": "100Mi"}}}, "E064"),
        (
            {"TOPICS": {"t": {"KEDA": True, "PARTITIONS": 3, "CONSUMER_CONFIG": {"auto.offset.reset": "error"}}}},
            "E065",
        ),
        ({"MANIFESTS": {"APP_NAME": "My_Service"}}, "E066"),
        ({"MANIFESTS": {"ENV": {"PORT": 8000}}}, "E066"),
        ({"MANIFESTS": {"KEDA_AUTH": {"user": "KAFKA_USERNAME"}}}, "E066"),
        ({"MANIFESTS": {"RUN_AS_USER": 0}}, "E066"),
    ],
)
def test_invalid_manifest_settings_are_reported_with_their_check_id(settings, kafka_consumer, check_id):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, **kafka_consumer}
    assert f"kafka_consumer_app.{check_id}" in {problem.id for problem in topic_settings.problems()}


def test_valid_manifest_settings_raise_no_problem(awkward_settings):
    assert topic_settings.problems() == []


def test_the_command_prints_yaml_or_writes_a_directory_and_removes_only_its_own_stale_files(settings, tmp_path):
    settings.KAFKA_CONSUMER = {
        **settings.KAFKA_CONSUMER,
        "HEARTBEAT_FILE": None,
        "TOPICS": {"a": {}, "b": {"KEDA": True, "PARTITIONS": 2}},
    }
    out = StringIO()
    call_command("consumer_manifests", image=IMAGE, topics=["b"], namespace="team", stdout=out)
    items = load_documents(out.getvalue())
    assert [item["kind"] for item in items] == ["ConfigMap", "Deployment", "PodDisruptionBudget", "ScaledObject"]
    assert {item["metadata"]["namespace"] for item in items} == {"team"}
    assert "authenticationRef" not in items[-1]["spec"]["triggers"][0]  # no credentials: no TriggerAuthentication

    (tmp_path / "kafka-consumer-old-topic.yaml").write_text(manifests.HEADER + "kind: ConfigMap\n")
    (tmp_path / "networkpolicy.yaml").write_text("kind: NetworkPolicy\n")
    call_command("consumer_manifests", image=IMAGE, output=str(tmp_path), stdout=StringIO())
    assert sorted(path.name for path in tmp_path.glob("*.yaml")) == [
        "kafka-consumer-a.yaml",
        "kafka-consumer-b.yaml",
        "kafka-consumer.yaml",
        "kustomization.yaml",
        "networkpolicy.yaml",
    ]


@pytest.mark.parametrize(
    ("kafka_consumer", "options", "message"),
    [
        ({"TOPICS": {}}, {}, "no topic to render"),
        ({"TOPICS": {"a": {}}}, {"keda": True}, "E063"),
        ({"TOPICS": {"a": {}}, "HEARTBEAT_FILE": "/var/run/consumer.heartbeat"}, {}, "outside /tmp"),
        ({"TOPICS": {"a": {}}, "HEARTBEAT_FILE": False}, {}, "HEARTBEAT_FILE'] is False"),
        (
            {
                "TOPICS": {"a": {"KEDA": True, "PARTITIONS": 2}},
                "CONSUMER_CONFIG": {
                    "security.protocol": "SASL_SSL",
                    "sasl.mechanism": "PLAIN",
                    "sasl.username": "u",
                    "sasl.password": "p",
                },
            },
            {},
            "maps no username and no password",
        ),
        ({"TOPICS": {"a": {"REPLICAS": 5, "PARTITIONS": 4}}}, {}, "E062"),
        ({"TOPICS": {"a": {"SHARE_GROUP": True, "PARTITIONS": 2}}}, {"keda": True}, "E126"),
        ({"TOPICS": {"a": {"SHARE_GROUP": True, "KEDA": True, "PARTITIONS": 2}}}, {}, "E126"),
    ],
)
def test_the_command_refuses_settings_that_would_not_work_with_one_line(settings, kafka_consumer, options, message):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "HEARTBEAT_FILE": None, **kafka_consumer}
    with pytest.raises(CommandError, match=re.escape(message)) as raised:
        call_command("consumer_manifests", image=IMAGE, stdout=StringIO(), **options)
    assert "\n" not in str(raised.value)


def test_a_share_group_deployment_has_more_replicas_than_partitions_and_no_keda_scaler(settings):
    topics = {"orders": {"SHARE_GROUP": True, "REPLICAS": 6, "PARTITIONS": 1}}
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "HEARTBEAT_FILE": None, "TOPICS": topics}
    items = rendered_objects(IMAGE)
    (deployment,) = of_kind(items, "Deployment")
    assert deployment["spec"]["replicas"] == 6  # every replica of a share group shares the one partition
    assert container_of(deployment)["command"] == ["python", "manage.py", "consume_events", "--topic", "orders"]
    assert not of_kind(items, "ScaledObject")


# -- against the real broker: the container's exact command and probe ------------------------------------------


def exact_argv(command: list[str]) -> list[str]:
    """A container's argv as this machine can run it: only the interpreter is replaced."""
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


@pytest.mark.broker
def test_the_deployments_exact_command_stops_cleanly_on_sigterm_well_inside_its_grace_period(
    kafka_broker, group_id, tmp_path
):
    deployment = committed_object("Deployment", "example-service-orders")
    container = container_of(deployment)
    argv = exact_argv([*container["command"], *container.get("args", [])])
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    topic = argv[argv.index("--topic") + 1]
    # The exact argv consumes `orders`; a prefix unique to this test makes that a fresh Kafka topic.
    prefix = f"manifests-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(f"{prefix}-{topic}", 1)
    record = tmp_path / "record.txt"
    env = {
        **os.environ,
        **settings_env(tmp_path, TOPIC_PREFIX=prefix),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "KAFKA_GROUP_ID": group_id,
        "TESTAPP_TOPIC": topic,
        "TESTAPP_RECORD": str(record),
        "TESTAPP_RECORD_STARTS": "1",
    }
    values = [{"id": 1}, {"id": 2}, {"id": 3, "sleep": 3}, {"id": 4}, {"id": 5}]
    produce(kafka_broker.bootstrap_servers, f"{prefix}-{topic}", values, partition=0)
    with open(tmp_path / "consumer.log", "wb") as log:
        process = subprocess.Popen(argv, cwd=ROOT / "example", env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(
                lambda: any(r.id == 3 and r.kind == "started" for r in read_records(record)), 60, "message 3 in hand"
            )
            process.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            code = process.wait(timeout=grace / 10)
            elapsed = time.monotonic() - stopped_at
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    output = (tmp_path / "consumer.log").read_text(errors="replace")
    assert code == 0, output
    assert elapsed < grace / 10, f"stopped in {elapsed:.1f}s of a {grace}s grace period"
    assert [r.id for r in finished(read_records(record))] == [1, 2, 3]  # the message in hand was finished
    assert committed(kafka_broker.bootstrap_servers, group_id, f"{prefix}-{topic}", 1) == {0: 3}


@pytest.mark.broker
def test_the_liveness_probes_exact_command_passes_a_live_consumer_and_fails_a_stalled_one(
    kafka_broker, make_topic, group_id, settings, tmp_path
):
    topic = make_topic()
    settings.KAFKA_CONSUMER = {
        **settings.KAFKA_CONSUMER,
        "HEARTBEAT_FILE": None,
        "HEARTBEAT_MAX_AGE": 2,
        "TOPICS": {topic: {}},
    }
    (deployment,) = of_kind(rendered_objects(IMAGE), "Deployment")
    container = container_of(deployment)
    assert container["startupProbe"]["exec"] == container["livenessProbe"]["exec"]
    command = exact_argv(container["livenessProbe"]["exec"]["command"])
    assert command[1:] == ["-m", "kafka_consumer_app.probe", "--topic", topic, "--max-age", "2"]
    probe_env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    if "TMPDIR" in os.environ:  # the probe resolves the default heartbeat file as the loop does
        probe_env["TMPDIR"] = os.environ["TMPDIR"]

    def probe() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, env=probe_env, timeout=30)

    heartbeat = Path(default_heartbeat_file(topic))
    record = tmp_path / "record.txt"
    assert probe().returncode == 1  # no loop, no heartbeat
    process = ConsumerProcess(
        kafka_broker.bootstrap_servers,
        topic,
        record,
        group=group_id,
        env={"KAFKA_HEARTBEAT_FILE": str(heartbeat), "TESTAPP_RECORD_STARTS": "1"},
    )
    try:
        wait_for(lambda: probe().returncode == 0, 60, "the probe to pass on the live consumer", interval=0.5)
        produce(kafka_broker.bootstrap_servers, topic, [{"id": 1, "sleep": 8}])
        wait_for(lambda: read_records(record), 30, "the receiver to start sleeping")
        stalled = wait_for(lambda: (result := probe()).returncode == 1 and result, 7, "the probe to fail", interval=0.5)
        assert "unhealthy: the consume loop last polled" in stalled.stderr
        assert not finished(read_records(record)), "the probe failed only after the receiver returned"
        wait_for(lambda: finished(read_records(record)), 15, "the receiver to return")
        wait_for(lambda: probe().returncode == 0, 10, "the probe to pass again", interval=0.5)
        process.send()
        assert process.wait(30) == 0
    finally:
        process.kill()
        heartbeat.unlink(missing_ok=True)


def test_an_output_directory_that_cannot_be_written_is_one_line_and_exit_1(settings, tmp_path):
    settings.KAFKA_CONSUMER = {**settings.KAFKA_CONSUMER, "HEARTBEAT_FILE": None, "TOPICS": {"a": {}}}
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    with pytest.raises(CommandError) as raised:
        call_command("consumer_manifests", image=IMAGE, output=str(blocker / "k8s"), stdout=StringIO())
    assert raised.value.returncode == 1
    assert "\n" not in str(raised.value) and "cannot write the manifests into --output" in str(raised.value)
