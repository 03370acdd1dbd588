"""
The Kubernetes objects of a topic's consumers, built from a :class:`TopicPlan`.

:mod:`kafka_consumer_app.operations.manifests` resolves a plan per topic from the settings
and writes the files; this module knows Kubernetes: object names and labels within their
limits, the Deployment (exec-form ``consume_events``, probes, the restricted Pod Security
profile), the PodDisruptionBudget, the KEDA ScaledObject and TriggerAuthentication, and the
ConfigMap. The fixed values, and why they are what they are, are explained where they are
defined below and in docs/how-to/deploy.rst.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from kafka_consumer_app.exceptions import ConfigurationError
from kafka_consumer_app.settings import kubernetes
from kafka_consumer_app.settings import manifests as manifest_settings

CONTAINER = "consumer"
#: Prefix of this app's label and annotation keys.
KEY_PREFIX = "kafka-consumer-app"
MANAGED_BY = "kafka-consumer-app"
COMPONENT = "kafka-consumer"
#: KEDA names a ScaledObject's HPA ``keda-hpa-<name>`` and rejects names that make it longer than 63 characters,
#: so every object name stays within 54; Kubernetes' own limit (a DNS label, for pod host names) is 63.
MAX_NAME = 63 - len("keda-hpa-")
MAX_LABEL_VALUE = 63
HASH_LENGTH = 8
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
#: The only writable directory (the root filesystem is read-only): an emptyDir. The heartbeat lives there.
WRITABLE_DIR = "/tmp"
TMP_SIZE_LIMIT = "64Mi"
#: Seconds allowed, after the slowest receiver returned, for the final synchronous commit, closing the client
#: (which leaves the group) and flushing the dead-letter producer.
SHUTDOWN_MARGIN = 30
LIVENESS_PERIOD = 10
STARTUP_PERIOD = 5
#: Seconds for Python, Django and the receivers to import before the loop's first heartbeat.
STARTUP_BUDGET = 120
PROBE_TIMEOUT = 5
#: A new pod must run this long before a rollout replaces the next old one (maxSurge 0, maxUnavailable 1).
MIN_READY_SECONDS = 10
KEDA_POLLING_INTERVAL = 30
KEDA_COOLDOWN_PERIOD = 300
#: KEDA scales down by one pod a minute at most, after 5 minutes of lower lag: each change is a rebalance.
SCALE_DOWN_WINDOW = 300
SASL_TO_KEDA = {
    "PLAIN": "plaintext",
    "SCRAM-SHA-256": "scram_sha256",
    "SCRAM-SHA-512": "scram_sha512",
    "OAUTHBEARER": "oauthbearer",
    "GSSAPI": "gssapi",
}
#: KEDA SASL modes that authenticate with a username and a password.
PASSWORD_SASL = ("plaintext", "scram_sha256", "scram_sha512")


class ManifestError(ConfigurationError):
    """The settings cannot be rendered into working manifests; ``str()`` names the problem and its fix."""


@dataclass(frozen=True)
class TopicPlan:
    """Everything the manifests of one topic need, resolved from settings."""

    topic: str
    kafka_topic: str
    group_id: str
    bootstrap_servers: str
    name: str
    keda: bool
    replicas: int
    min_replicas: int
    max_replicas: int | None
    lag_threshold: int
    activation_lag_threshold: int
    limit_to_partitions_with_lag: bool
    exclude_persistent_lag: bool
    memory_request: str
    memory_limit: str
    cpu_request: str
    grace_period: int
    probe_command: tuple[str, ...]
    liveness_failures: int
    offset_reset: str | None
    sasl: str | None
    tls: bool


# -- names and labels --------------------------------------------------------------------------------------


def short_hash(text: str) -> str:
    """A short, stable digest of ``text``, the suffix that keeps shortened names unique."""
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def dns_label(text: str, max_length: int = MAX_NAME) -> str:
    """
    ``text`` as a DNS-1123 label of at most ``max_length`` characters.

    Text that already is one is kept. Otherwise invalid characters become '-', the result is cut
    to fit and a hash of the original text is appended, so that 'a.b', 'a_b' and 'a-b' differ.
    """
    if len(text) <= max_length and kubernetes.DNS_LABEL.match(text):
        return text
    candidate = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    prefix = candidate[: max_length - HASH_LENGTH - 1].rstrip("-")
    return f"{prefix}-{short_hash(text)}" if prefix else short_hash(text)


def label_value(text: str) -> str:
    """``text`` as a label value (63 characters of [A-Za-z0-9._-], alphanumeric at both ends), hashed if changed."""
    if len(text) <= MAX_LABEL_VALUE and LABEL_VALUE.match(text):
        return text
    candidate = re.sub(r"[^A-Za-z0-9._-]+", "-", text)
    candidate = re.sub(r"^[^A-Za-z0-9]+", "", candidate)[: MAX_LABEL_VALUE - HASH_LENGTH - 1]
    prefix = re.sub(r"[^A-Za-z0-9]+$", "", candidate)
    return f"{prefix}-{short_hash(text)}" if prefix else short_hash(text)


def topic_object_name(topic: str) -> str:
    """The name of a topic's Deployment, PodDisruptionBudget and ScaledObject: ``<APP_NAME>-<topic>``, bounded."""
    return dns_label(f"{manifest_settings.manifests_option('APP_NAME')}-{topic}")


# -- objects ------------------------------------------------------------------------------------------------


def _metadata(
    name: str, namespace: str | None, labels: dict[str, str], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    return metadata


def service_labels() -> dict[str, str]:
    """The labels of every object of the service."""
    return {
        "app.kubernetes.io/name": manifest_settings.manifests_option("APP_NAME"),
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector_labels(plan: TopicPlan) -> dict[str, str]:
    """The labels that select a topic's pods; a Deployment's selector is immutable, so these never change."""
    return {
        "app.kubernetes.io/name": manifest_settings.manifests_option("APP_NAME"),
        "app.kubernetes.io/instance": plan.name,
    }


def topic_labels(plan: TopicPlan) -> dict[str, str]:
    """The labels of a topic's objects and pods: the service's, the instance, the topic and the group (bounded)."""
    return {
        **service_labels(),
        "app.kubernetes.io/instance": plan.name,
        f"{KEY_PREFIX}/topic": label_value(plan.topic),
        f"{KEY_PREFIX}/group": label_value(plan.group_id),
    }


def topic_annotations(plan: TopicPlan) -> dict[str, str]:
    """The exact topic, Kafka topic and group, which labels may only carry shortened."""
    return {
        f"{KEY_PREFIX}/topic": plan.topic,
        f"{KEY_PREFIX}/kafka-topic": plan.kafka_topic,
        f"{KEY_PREFIX}/group": plan.group_id,
    }


def config_map_data() -> dict[str, str]:
    """The consumers' environment that is not secret: ``MANIFESTS['ENV']`` and DJANGO_SETTINGS_MODULE."""
    data = dict(manifest_settings.manifests_option("ENV"))
    # override_settings hides SETTINGS_MODULE; manage.py sets the variable either way.
    module = getattr(settings, "SETTINGS_MODULE", None) or os.environ.get("DJANGO_SETTINGS_MODULE")
    if "DJANGO_SETTINGS_MODULE" not in data:
        if not module:
            raise ManifestError(
                "the settings module is unknown (settings were configured in code); set "
                "KAFKA_CONSUMER['MANIFESTS']['ENV']['DJANGO_SETTINGS_MODULE']"
            )
        data["DJANGO_SETTINGS_MODULE"] = module
    return dict(sorted(data.items()))


def config_map_object(namespace: str | None) -> dict[str, Any]:
    """The service's ConfigMap, the consumers' environment (envFrom)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(manifest_settings.manifests_option("APP_NAME"), namespace, service_labels()),
        "data": config_map_data(),
    }


def trigger_authentication_object(namespace: str | None) -> dict[str, Any]:
    """KEDA's credentials for Kafka, taken from the keys of the service's Secret that KEDA_AUTH names."""
    secret = manifest_settings.manifests_option("SECRET")
    auth = manifest_settings.manifests_option("KEDA_AUTH")
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": _metadata(manifest_settings.manifests_option("APP_NAME"), namespace, service_labels()),
        "spec": {
            "secretTargetRef": [
                {"parameter": parameter, "name": secret, "key": key} for parameter, key in sorted(auth.items())
            ]
        },
    }


def _probe(plan: TopicPlan, period: int, failures: int) -> dict[str, Any]:
    return {
        "exec": {"command": list(plan.probe_command)},
        "periodSeconds": period,
        "timeoutSeconds": PROBE_TIMEOUT,
        "failureThreshold": failures,
    }


def container(plan: TopicPlan, image: str) -> dict[str, Any]:
    """The consumer container: exec-form command (SIGTERM reaches Python), probes, resources, hardening."""
    return {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "manage.py", "consume_events", "--topic", plan.topic],
        "envFrom": [
            {"configMapRef": {"name": manifest_settings.manifests_option("APP_NAME")}},
            {"secretRef": {"name": manifest_settings.manifests_option("SECRET")}},
        ],
        "resources": {
            "requests": {"cpu": plan.cpu_request, "memory": plan.memory_request},
            "limits": {"memory": plan.memory_limit},
        },
        "startupProbe": _probe(plan, STARTUP_PERIOD, math.ceil(STARTUP_BUDGET / STARTUP_PERIOD)),
        "livenessProbe": _probe(plan, LIVENESS_PERIOD, plan.liveness_failures),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": WRITABLE_DIR}],
    }


def deployment_object(plan: TopicPlan, image: str, namespace: str | None, config_hash: str) -> dict[str, Any]:
    """The topic's Deployment: one consumer process per pod, in the topic's consumer group."""
    user = manifest_settings.manifests_option("RUN_AS_USER")
    spec: dict[str, Any] = {}
    if not plan.keda:
        spec["replicas"] = plan.replicas
    spec |= {
        "selector": {"matchLabels": selector_labels(plan)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
        "minReadySeconds": MIN_READY_SECONDS,
        "template": {
            "metadata": {
                "labels": topic_labels(plan),
                "annotations": {**topic_annotations(plan), f"{KEY_PREFIX}/config-hash": config_hash},
            },
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": plan.grace_period,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": user,
                    "runAsGroup": user,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": selector_labels(plan)},
                    }
                ],
                "containers": [container(plan, image)],
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}}],
            },
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(plan.name, namespace, topic_labels(plan), topic_annotations(plan)),
        "spec": spec,
    }


def pod_disruption_budget_object(plan: TopicPlan, namespace: str | None) -> dict[str, Any]:
    """Voluntary disruptions (node drains) take the topic's pods one at a time: one rebalance at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(plan.name, namespace, topic_labels(plan), topic_annotations(plan)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(plan)}},
    }


def _flag(value: bool) -> str:
    """A boolean as KEDA's trigger metadata (a map of strings) spells it."""
    return "true" if value else "false"


def scaled_object(plan: TopicPlan, namespace: str | None) -> dict[str, Any]:
    """KEDA scales the topic's Deployment on the group's lag, between MIN_REPLICAS and the partition count."""
    auth = manifest_settings.manifests_option("KEDA_AUTH")
    metadata = {
        "bootstrapServers": plan.bootstrap_servers,
        "consumerGroup": plan.group_id,
        "topic": plan.kafka_topic,
        "lagThreshold": str(plan.lag_threshold),
        "activationLagThreshold": str(plan.activation_lag_threshold),
        "limitToPartitionsWithLag": _flag(plan.limit_to_partitions_with_lag),
        "excludePersistentLag": _flag(plan.exclude_persistent_lag),
        "offsetResetPolicy": plan.offset_reset,
    }
    if plan.sasl and "sasl" not in auth:
        metadata["sasl"] = plan.sasl
    if plan.tls and "tls" not in auth:
        metadata["tls"] = "enable"
    trigger: dict[str, Any] = {"type": manifest_settings.manifests_option("KEDA_SCALER"), "metadata": metadata}
    if auth:
        trigger["authenticationRef"] = {"name": manifest_settings.manifests_option("APP_NAME")}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _metadata(plan.name, namespace, topic_labels(plan), topic_annotations(plan)),
        "spec": {
            "scaleTargetRef": {"name": plan.name},
            "minReplicaCount": plan.min_replicas,
            "maxReplicaCount": plan.max_replicas,
            "pollingInterval": KEDA_POLLING_INTERVAL,
            "cooldownPeriod": KEDA_COOLDOWN_PERIOD,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleDown": {
                            "stabilizationWindowSeconds": SCALE_DOWN_WINDOW,
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                        }
                    }
                }
            },
            "triggers": [trigger],
        },
    }
