"""
The Kubernetes and KEDA vocabulary the manifest settings are checked against and rendered with.

Names (DNS labels and subdomains, environment variables, Secret keys), resource quantities and
the KEDA Kafka scaler's parameters. Pure values and functions: no settings are read here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: The trigger types of KEDA's Kafka scalers (MANIFESTS['KEDA_SCALER']).
KEDA_SCALERS = ("kafka", "apache-kafka")
#: Parameters of KEDA's Kafka scalers that a TriggerAuthentication may take from a Secret.
KEDA_AUTH_PARAMETERS = (
    "sasl",
    "tls",
    "username",
    "password",
    "ca",
    "cert",
    "key",
    "keyPassword",
    "oauthTokenEndpointUri",
    "scopes",
    "oauthExtensions",
    "keytab",
    "realm",
    "kerberosConfig",
    "kerberosServiceName",
)
#: librdkafka's auto.offset.reset values, as KEDA's offsetResetPolicy (librdkafka's 'error' has no equivalent).
OFFSET_RESET_POLICIES = {
    "smallest": "earliest",
    "earliest": "earliest",
    "beginning": "earliest",
    "largest": "latest",
    "latest": "latest",
    "end": "latest",
}
#: Kubernetes object names: an RFC 1123 label (at most 63 characters: callers check lengths) and subdomain.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
#: An environment variable name, and a key of a Secret.
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+\Z")
#: Resource quantities: memory with a decimal or binary suffix, CPU in cores or millicores.
MEMORY_QUANTITY = re.compile(r"^(0|[1-9][0-9]*)(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?\Z")
CPU_QUANTITY = re.compile(r"^(0|[1-9][0-9]*)(\.[0-9]+)?m?\Z")
_MEMORY_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def memory_bytes(quantity: Any) -> float:
    """The number of bytes a valid memory quantity (e.g. '256Mi', '1G', 1000000) stands for."""
    match = MEMORY_QUANTITY.match(str(quantity))
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    number = float(match.group(1) + (match.group(2) or ""))
    return number * _MEMORY_UNITS[match.group(3) or ""]


def offset_reset_policy(consumer_config: Mapping[str, Any]) -> str | None:
    """KEDA's offsetResetPolicy for the consumer's auto.offset.reset (the app's default: earliest), or None."""
    value = consumer_config.get("auto.offset.reset", "earliest")
    return OFFSET_RESET_POLICIES.get(str(value).lower())
