"""
The Kubernetes manifests that ``consumer_manifests`` renders: MANIFESTS and the per-topic manifest keys.

Keys: MANIFESTS (its service-wide keys in ``MANIFESTS_DOC``) and, per topic, REPLICAS,
PARTITIONS, KEDA, MIN_REPLICAS, MAX_REPLICAS, LAG_THRESHOLD, ACTIVATION_LAG_THRESHOLD,
LIMIT_TO_PARTITIONS_WITH_LAG, EXCLUDE_PERSISTENT_LAG, MEMORY_REQUEST, MEMORY_LIMIT and CPU_REQUEST,
each of which MANIFESTS may also set for every topic. Only
:mod:`kafka_consumer_app.operations.manifests` reads them; the consumer does not.
"""

from __future__ import annotations

from typing import Any

from kafka_consumer_app.settings.base import DocTable, Problem, count, raw_settings, topic_overrides, topic_where
from kafka_consumer_app.settings.connection import consumer_config
from kafka_consumer_app.settings.kubernetes import (
    CPU_QUANTITY,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    ENV_NAME,
    KEDA_AUTH_PARAMETERS,
    KEDA_SCALERS,
    MEMORY_QUANTITY,
    SECRET_KEY,
    memory_bytes,
    offset_reset_policy,
)
from kafka_consumer_app.validation import key_list

#: The top-level keys of this subject: (default, description).
SETTINGS: DocTable = {
    "MANIFESTS": (
        {},
        "Options of consumer_manifests (the Kubernetes manifests): service-wide keys in MANIFESTS_DOC, "
        "and defaults of the per-topic manifest keys (REPLICAS, MEMORY_REQUEST...) for every topic.",
    ),
}

#: The per-topic keys that only consumer_manifests reads; ``MANIFESTS`` may set a default for each.
TOPIC_SETTINGS: DocTable = {
    "REPLICAS": (1, "Replicas of the Deployment when KEDA does not scale it (at most PARTITIONS; 0 stops it)."),
    "PARTITIONS": (
        None,
        "The topic's partition count: the most replicas that get work. Caps REPLICAS and KEDA's "
        "maxReplicaCount; required with KEDA.",
    ),
    "KEDA": (
        False,
        "Scale the topic's Deployment on consumer lag with a KEDA ScaledObject; the Deployment then has no "
        "replicas field. consumer_manifests --keda sets it for every topic rendered.",
    ),
    "MIN_REPLICAS": (1, "KEDA's minReplicaCount; 0 lets KEDA scale the consumer to zero while there is no lag."),
    "MAX_REPLICAS": (None, "KEDA's maxReplicaCount. Default, and upper bound: PARTITIONS."),
    "LAG_THRESHOLD": (100, "KEDA's lagThreshold: the consumer lag per replica that KEDA scales towards."),
    "ACTIVATION_LAG_THRESHOLD": (
        0,
        "KEDA's activationLagThreshold: with MIN_REPLICAS 0, the lag above which KEDA starts the first replica. "
        "0 wakes the consumer for the first message; raise it to let a small backlog wait.",
    ),
    "LIMIT_TO_PARTITIONS_WITH_LAG": (
        True,
        "KEDA's limitToPartitionsWithLag: never more replicas than partitions with lag, since a replica can "
        "only help a partition that has some.",
    ),
    "EXCLUDE_PERSISTENT_LAG": (
        True,
        "KEDA's excludePersistentLag: leave out the lag of a partition whose committed offset has not moved "
        "since KEDA's last poll (stuck, retrying or paused), so that it does not scale out for ever. KEDA still "
        "counts it to wake a consumer scaled to zero.",
    ),
    "MEMORY_REQUEST": ("256Mi", "The consumer container's memory request (a Kubernetes quantity)."),
    "MEMORY_LIMIT": (
        None,
        "The consumer container's memory limit, at least the request. Default: MEMORY_REQUEST, so the pod "
        "is never evicted for using memory it was not guaranteed.",
    ),
    "CPU_REQUEST": ("100m", "The consumer container's CPU request. No CPU limit is set: throttling stalls the loop."),
}
#: The names of those per-topic keys, which MANIFESTS accepts as defaults too.
MANIFEST_TOPIC_KEYS = tuple(TOPIC_SETTINGS)

#: Documentation of the service-wide keys of ``KAFKA_CONSUMER['MANIFESTS']``, read by ``consumer_manifests``.
MANIFESTS_DOC: DocTable = {
    "APP_NAME": (
        "kafka-consumer",
        "The service's name: the app.kubernetes.io/name label, the name of the shared objects and the prefix of "
        "each topic's objects ('<APP_NAME>-<topic>'). A DNS label of at most 40 characters.",
    ),
    "NAMESPACE": (None, "Namespace of every object; --namespace overrides it. None leaves it to kubectl."),
    "ENV": (
        {},
        "Environment variables of the consumers that are not secret, rendered into the service's ConfigMap "
        "(envFrom). Put here every variable your settings read, with the value it has where you render, so "
        "the pods resolve the settings the manifests were rendered from. DJANGO_SETTINGS_MODULE is added.",
    ),
    "SECRET": (
        "<APP_NAME>-secrets",
        "Name of the Secret whose keys become environment variables (envFrom) and feed KEDA_AUTH. It is not "
        "rendered: create it with kubectl or your secret manager.",
    ),
    "KEDA_AUTH": (
        {},
        "KEDA Kafka scaler authentication parameters mapped to keys of SECRET, e.g. {'username': "
        "'KAFKA_USERNAME', 'password': 'KAFKA_PASSWORD'}: rendered as a TriggerAuthentication. sasl and tls "
        "are derived from CONSUMER_CONFIG unless mapped here. Required with SASL PLAIN or SCRAM.",
    ),
    "KEDA_SCALER": (
        "kafka",
        "KEDA trigger type: 'kafka' (KEDA's stable Apache Kafka scaler) or 'apache-kafka' (its experimental "
        "kafka-go based one). Both take the same metadata here.",
    ),
    "RUN_AS_USER": (10001, "UID and GID of the container: the restricted Pod Security profile needs non-root."),
}
#: APP_NAME prefixes the topics' object names, which must stay DNS labels (63 characters at most).
MAX_APP_NAME = 40

_WHERE = "KAFKA_CONSUMER['MANIFESTS']"
_IDLE = "the extra replicas would get no partition and sit idle"


# -- readers ---------------------------------------------------------------------------------


def manifests_settings() -> dict[str, Any]:
    """``KAFKA_CONSUMER['MANIFESTS']`` as read now (an empty dict when unset)."""
    value = raw_settings().get("MANIFESTS")
    return value if isinstance(value, dict) else {}


def manifests_option(key: str) -> Any:
    """A service-wide MANIFESTS option, or its default (SECRET defaults to '<APP_NAME>-secrets')."""
    options = manifests_settings()
    if key in options:
        return options[key]
    if key == "SECRET":
        return f"{manifests_option('APP_NAME')}-secrets"
    return MANIFESTS_DOC[key][0]


def manifest_setting(topic: str, key: str) -> Any:
    """A per-topic manifest key: the topic's value, else the MANIFESTS default, else the documented default."""
    return _manifest_value(raw_settings(), topic_overrides(topic), key)


def _manifest_value(top: dict[str, Any], overrides: dict[str, Any], key: str) -> Any:
    manifests = top.get("MANIFESTS")
    if key in overrides:
        value = overrides[key]
    elif isinstance(manifests, dict) and key in manifests:
        value = manifests[key]
    else:
        value = TOPIC_SETTINGS[key][0]
    if key == "MEMORY_LIMIT" and value is None:
        return _manifest_value(top, overrides, "MEMORY_REQUEST")
    return value


# -- checks ----------------------------------------------------------------------------------


def problems(value: dict[str, Any]) -> list[Problem]:
    """MANIFESTS: its type and keys, the service-wide options and the per-topic defaults it sets."""
    manifests = value.get("MANIFESTS")
    if manifests is None:
        return []
    if not isinstance(manifests, dict):
        return [
            Problem(
                "kafka_consumer_app.E060",
                f"KAFKA_CONSUMER['MANIFESTS'] must be a dict, not {type(manifests).__name__}",
                "Write MANIFESTS = {'APP_NAME': '<service>', ...}; see docs/how-to/deploy.rst.",
            )
        ]
    found = []
    unknown = key_list(set(manifests) - set(MANIFESTS_DOC) - set(MANIFEST_TOPIC_KEYS))
    if unknown:
        found.append(
            Problem(
                "kafka_consumer_app.E060",
                f"unknown key(s) in KAFKA_CONSUMER['MANIFESTS']: {unknown}",
                f"Valid keys are {', '.join(MANIFESTS_DOC)} and the per-topic defaults "
                f"{', '.join(MANIFEST_TOPIC_KEYS)}.",
            )
        )
    found += _service_name_problems(manifests)
    found += _service_option_problems(manifests)
    return found + _key_problems(manifests, _WHERE)


def topic_problems(top: dict[str, Any], name: Any, overrides: dict[str, Any]) -> list[Problem]:
    """One topic's manifest keys; then, when they and the MANIFESTS defaults are valid, their effective values."""
    if top.get("MANIFESTS") is not None and not isinstance(top["MANIFESTS"], dict):
        return []  # E060 already says MANIFESTS is unusable; the topics' manifest keys wait for it
    where = topic_where(name)
    own = _key_problems(overrides, where)
    if own or problems(top):  # the effective values can be compared only once each of them is valid
        return own
    return _consistency_problems(top, overrides, where)


def manifest_topic_problems(topic: str) -> list[Problem]:
    """The manifest problems of one topic, whether or not TOPICS lists it (consumer_manifests --topic)."""
    top = raw_settings()
    overrides = topic_overrides(topic)
    where = topic_where(topic)
    found = _key_problems(overrides, where)
    manifests = top.get("MANIFESTS")
    if isinstance(manifests, dict):
        found += _key_problems(manifests, _WHERE)
    return found or _consistency_problems(top, overrides, where)


def _bad(manifests: dict[str, Any], key: str, what: str, hint: str) -> Problem:
    return Problem("kafka_consumer_app.E066", f"{_WHERE}['{key}'] {what}, not {manifests[key]!r}", hint)


def _service_name_problems(manifests: dict[str, Any]) -> list[Problem]:
    """E066 for the names: APP_NAME, NAMESPACE and SECRET."""
    found = []
    app = manifests.get("APP_NAME")
    if "APP_NAME" in manifests and not (isinstance(app, str) and DNS_LABEL.match(app) and len(app) <= MAX_APP_NAME):
        found.append(
            _bad(
                manifests,
                "APP_NAME",
                f"must be a DNS label of at most {MAX_APP_NAME} characters",
                "Use lower-case letters, digits and '-', e.g. 'credentials-service'.",
            )
        )
    namespace = manifests.get("NAMESPACE")
    if namespace is not None and not (
        isinstance(namespace, str) and DNS_LABEL.match(namespace) and len(namespace) < 64
    ):
        hint = "Use lower-case letters, digits and '-' (at most 63), or None."
        found.append(_bad(manifests, "NAMESPACE", "must be a namespace name", hint))
    secret = manifests.get("SECRET")
    if "SECRET" in manifests and not (isinstance(secret, str) and DNS_SUBDOMAIN.match(secret) and len(secret) <= 253):
        hint = "Use lower-case letters, digits, '-' and '.', e.g. 'my-secrets'."
        found.append(_bad(manifests, "SECRET", "must be a Secret name", hint))
    return found


def _service_option_problems(manifests: dict[str, Any]) -> list[Problem]:
    """E066 for the other options: ENV, KEDA_AUTH, KEDA_SCALER and RUN_AS_USER."""
    found = []
    env = manifests.get("ENV")
    if "ENV" in manifests and not (
        isinstance(env, dict)
        and all(isinstance(k, str) and ENV_NAME.match(k) and isinstance(v, str) for k, v in env.items())
    ):
        hint = "Write ENV = {'KAFKA_BOOTSTRAP_SERVERS': 'kafka:9092'}; quote numbers, e.g. '60'."
        found.append(_bad(manifests, "ENV", "must map environment variable names to strings", hint))
    auth = manifests.get("KEDA_AUTH")
    if "KEDA_AUTH" in manifests and not (
        isinstance(auth, dict)
        and all(k in KEDA_AUTH_PARAMETERS and isinstance(v, str) and SECRET_KEY.match(v) for k, v in auth.items())
    ):
        hint = f"Parameters are {', '.join(KEDA_AUTH_PARAMETERS)}; e.g. {{'password': 'KAFKA_PASSWORD'}}."
        found.append(
            _bad(manifests, "KEDA_AUTH", "must map KEDA Kafka authentication parameters to keys of the Secret", hint)
        )
    if "KEDA_SCALER" in manifests and manifests["KEDA_SCALER"] not in KEDA_SCALERS:
        hint = "Remove it for KEDA's stable 'kafka' scaler."
        found.append(_bad(manifests, "KEDA_SCALER", f"must be one of {', '.join(KEDA_SCALERS)}", hint))
    if "RUN_AS_USER" in manifests and not count(manifests["RUN_AS_USER"], 1):
        hint = "Remove it for the default, 10001."
        found.append(_bad(manifests, "RUN_AS_USER", "must be a non-root UID (an integer above 0)", hint))
    return found


def _key_problems(scope: dict[str, Any], where: str) -> list[Problem]:
    """Types and ranges of the per-topic manifest keys present in ``scope`` (a topic, or the MANIFESTS defaults)."""
    found = []
    counts = {
        "REPLICAS": 0,
        "PARTITIONS": 1,
        "MIN_REPLICAS": 0,
        "MAX_REPLICAS": 1,
        "LAG_THRESHOLD": 1,
        "ACTIVATION_LAG_THRESHOLD": 0,
    }
    for key, minimum in counts.items():
        if key not in scope or (key in ("PARTITIONS", "MAX_REPLICAS") and scope[key] is None):
            continue
        if not count(scope[key], minimum):
            found.append(
                Problem(
                    "kafka_consumer_app.E061",
                    f"{where}['{key}'] must be an integer of at least {minimum}, not {scope[key]!r}",
                    f"Set {key} to a whole number, or remove it for the default.",
                )
            )
    switches = {
        "KEDA": "Set KEDA = True to scale the topic's consumers on lag with KEDA.",
        "LIMIT_TO_PARTITIONS_WITH_LAG": "Remove it for the default, True.",
        "EXCLUDE_PERSISTENT_LAG": "Remove it for the default, True.",
    }
    for key, hint in switches.items():
        if key in scope and not isinstance(scope[key], bool):
            found.append(
                Problem("kafka_consumer_app.E063", f"{where}['{key}'] must be True or False, not {scope[key]!r}", hint)
            )
    return found + _quantity_problems(scope, where)


def _quantity_problems(scope: dict[str, Any], where: str) -> list[Problem]:
    found = []
    quantities = {"MEMORY_REQUEST": MEMORY_QUANTITY, "MEMORY_LIMIT": MEMORY_QUANTITY, "CPU_REQUEST": CPU_QUANTITY}
    for key, pattern in quantities.items():
        if key not in scope or (key == "MEMORY_LIMIT" and scope[key] is None):
            continue
        value = scope[key]
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not pattern.match(str(value)):
            found.append(
                Problem(
                    "kafka_consumer_app.E064",
                    f"{where}['{key}'] is not a Kubernetes {'CPU' if key == 'CPU_REQUEST' else 'memory'} "
                    f"quantity: {value!r}",
                    "Write memory as e.g. '256Mi' or '1Gi' and CPU as e.g. '100m' or '1'.",
                )
            )
    return found


def _consistency_problems(top: dict[str, Any], overrides: dict[str, Any], where: str) -> list[Problem]:
    """The effective manifest values of one topic (topic, else MANIFESTS, else default) against each other."""
    found = _replica_problems(top, overrides, where)
    found += _memory_problems(top, overrides, where)
    if _manifest_value(top, overrides, "KEDA"):
        found += _keda_offset_problems(top, overrides, where)
    return found


def _replica_problems(top: dict[str, Any], overrides: dict[str, Any], where: str) -> list[Problem]:
    """E062 and E063: replica counts within PARTITIONS, which KEDA needs."""
    values = {key: _manifest_value(top, overrides, key) for key in MANIFEST_TOPIC_KEYS}
    partitions, keda, maximum = values["PARTITIONS"], values["KEDA"], values["MAX_REPLICAS"]
    found = []
    if partitions is not None and values["REPLICAS"] > partitions:
        found.append(
            Problem(
                "kafka_consumer_app.E062",
                f"{where}: REPLICAS ({values['REPLICAS']}) is more than PARTITIONS ({partitions}); {_IDLE}",
                "Lower REPLICAS to at most PARTITIONS, or add partitions to the topic and raise PARTITIONS.",
            )
        )
    if keda and partitions is None:
        found.append(
            Problem(
                "kafka_consumer_app.E063",
                f"{where} is scaled by KEDA but has no PARTITIONS to cap its replicas",
                "Set the topic's PARTITIONS to its partition count (kafka-topics.sh --describe shows it).",
            )
        )
    if keda and partitions is not None and maximum is not None and maximum > partitions:
        found.append(
            Problem(
                "kafka_consumer_app.E062",
                f"{where}: MAX_REPLICAS ({maximum}) is more than PARTITIONS ({partitions}); {_IDLE}",
                "Lower MAX_REPLICAS to at most PARTITIONS, or remove it to use PARTITIONS.",
            )
        )
    ceiling = maximum if maximum is not None else partitions
    if keda and ceiling is not None and values["MIN_REPLICAS"] > ceiling:
        found.append(
            Problem(
                "kafka_consumer_app.E062",
                f"{where}: MIN_REPLICAS ({values['MIN_REPLICAS']}) is more than the most replicas ({ceiling})",
                "Lower MIN_REPLICAS.",
            )
        )
    return found


def _memory_problems(top: dict[str, Any], overrides: dict[str, Any], where: str) -> list[Problem]:
    request, limit = _manifest_value(top, overrides, "MEMORY_REQUEST"), _manifest_value(top, overrides, "MEMORY_LIMIT")
    if memory_bytes(request) <= memory_bytes(limit):
        return []
    return [
        Problem(
            "kafka_consumer_app.E064",
            f"{where}: MEMORY_REQUEST ({request}) is above MEMORY_LIMIT ({limit}), which Kubernetes rejects",
            "Raise MEMORY_LIMIT, or remove it to use MEMORY_REQUEST.",
        )
    ]


def _keda_offset_problems(top: dict[str, Any], overrides: dict[str, Any], where: str) -> list[Problem]:
    merged = consumer_config(top, overrides)
    if offset_reset_policy(merged) is not None:
        return []
    return [
        Problem(
            "kafka_consumer_app.E065",
            f"{where} is scaled by KEDA, whose offsetResetPolicy cannot follow auto.offset.reset "
            f"{merged.get('auto.offset.reset')!r}",
            "Use auto.offset.reset 'earliest' (the app's default) or 'latest' for topics scaled by KEDA.",
        )
    ]
