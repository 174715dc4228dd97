"""The Kubernetes objects that run a model server: a Deployment probed on the OIP health routes, a Service and
an autoscaling/v2 HorizontalPodAutoscaler, as plain dicts ready for YAML."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shipyard.errors import ValidationError

PORT = 8080
TERMINATION_GRACE_SECONDS = 70
USER_ID = 10001  # the image's non-root user; numeric so that runAsNonRoot can be checked
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # RFC 1123: namespaces
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # RFC 1035: Service names, so every object's
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")  # RFC 1123 subdomains: Secrets
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]{1,3})?)$")
_MEMORY = re.compile(r"^([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MEMORY_UNITS = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
                 "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
MIB = 1 << 20


@dataclass(frozen=True)
class Resources:
    cpu: str  # the request; no CPU limit (see docs/deploy.md: a limit throttles a busy server's p99)
    memory_request_mib: int
    memory_limit_mib: int


@dataclass(frozen=True)
class Workload:
    """What the manifests describe: one model version served by `image` under `name`."""

    name: str
    namespace: str | None
    image: str
    model: str
    version: int
    ref: str
    artifact_digest: str
    resources: Resources
    min_replicas: int
    max_replicas: int
    target_cpu_percent: int
    secret: str | None  # shared registry: the Secret whose keys become the container's environment


def check_name(value: str, option: str = "--name") -> str:
    if len(value) > 63 or not _NAME.match(value):
        raise ValidationError(
            f"Invalid Kubernetes name {value!r} ({option}): use at most 63 lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit, e.g. 'credit-scoring'.", value=value)
    return value


def check_namespace(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValidationError(
            f"Invalid namespace {value!r} (--namespace): use at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, e.g. 'ml-serving'.", value=value)
    return value


def check_secret(value: str) -> str:
    if len(value) > 253 or not _SUBDOMAIN.match(value):
        raise ValidationError(
            f"Invalid Secret name {value!r} (--secret): use at most 253 lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit, e.g. 'credit-registry'.", value=value)
    return value


def name_for(model: str) -> str:
    """The Kubernetes name of a model's objects: its name in lowercase with '_' and '.' as '-'."""
    derived = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", model.lower())).strip("-")
    if len(derived) > 63 or not _NAME.match(derived):
        raise ValidationError(
            f"The model name {model!r} does not make a Kubernetes name ({derived!r} is not one: at most 63 "
            "lowercase letters, digits and '-', starting with a letter). Pass one with --name, e.g. "
            "--name model-server.", model=model)
    return derived


def check_label_value(value: str, what: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ValidationError(
            f"The {what} {value!r} cannot be a Kubernetes label value (at most 63 letters, digits, '-', '_' or "
            "'.', starting and ending with a letter or digit). Register the model under a name that can.")
    return value


def check_cpu(value: str) -> str:
    if not _CPU.match(value) or value.rstrip("m") in ("0", "0.0"):
        raise ValidationError(f"Invalid CPU quantity {value!r} (--cpu): use cores ('1', '0.5') or millicores "
                              "('500m').", value=value)
    return value


def memory_mib(value: str) -> int:
    """A Kubernetes memory quantity ('512Mi', '1Gi', '600M') in MiB, rounded up."""
    match = _MEMORY.match(value)
    if not match or int(match.group(1)) == 0:
        raise ValidationError(f"Invalid memory quantity {value!r} (--memory): use a number with a unit, e.g. "
                              "'512Mi' or '2Gi'.", value=value)
    size = int(match.group(1)) * _MEMORY_UNITS[match.group(2)]
    return -(-size // MIB)


def labels(work: Workload, *, selector: bool = False) -> dict[str, str]:
    """The selector labels stay the same from version to version, so applying a newer export rolls the
    Deployment over to it; the version labels are on the objects and the pods."""
    chosen = {"app.kubernetes.io/name": work.name, "app.kubernetes.io/component": "model-server"}
    if selector:
        return chosen
    return {**chosen, "app.kubernetes.io/version": str(work.version), "app.kubernetes.io/managed-by": "shipyard",
            "shipyard.dev/model": work.model, "shipyard.dev/version": str(work.version)}


def _metadata(work: Workload) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": work.name}
    if work.namespace:
        meta["namespace"] = work.namespace
    meta["labels"] = labels(work)
    meta["annotations"] = {"shipyard.dev/ref": work.ref, "shipyard.dev/artifact-digest": work.artifact_digest}
    return meta


def deployment(work: Workload) -> dict[str, Any]:
    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "timeoutSeconds": 5,
                "failureThreshold": failures}

    resources = work.resources
    container: dict[str, Any] = {
        "name": "server",
        "image": work.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
    }
    if work.secret:
        container["envFrom"] = [{"secretRef": {"name": work.secret}}]
    container.update({
        "resources": {
            "requests": {"cpu": resources.cpu, "memory": f"{resources.memory_request_mib}Mi"},
            "limits": {"memory": f"{resources.memory_limit_mib}Mi"},
        },
        # The server answers once its models are loaded: the startup probe gives loading five minutes
        # before the liveness probe may restart the container.
        "startupProbe": probe("/v2/health/live", 5, 60),
        "livenessProbe": probe("/v2/health/live", 10, 3),
        "readinessProbe": probe("/v2/health/ready", 5, 3),
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    })
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(work),
        "spec": {
            # No `replicas`: the HorizontalPodAutoscaler sets it, and applying again must not reset it.
            "selector": {"matchLabels": labels(work, selector=True)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": labels(work),
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(PORT),
                                    "prometheus.io/path": "/metrics"},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": USER_ID, "runAsGroup": USER_ID,
                                        "fsGroup": USER_ID, "seccompProfile": {"type": "RuntimeDefault"}},
                    # The server's defaults: up to 30 s for requests in flight, then up to 30 s to write the
                    # prediction log (what is left spills to disk); a margin before Kubernetes kills the pod.
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                    "containers": [container],
                },
            },
        },
    }


def service(work: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(work),
        "spec": {
            "type": "ClusterIP",
            "selector": labels(work, selector=True),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def autoscaler(work: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(work),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": work.name},
            "minReplicas": work.min_replicas,
            "maxReplicas": work.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": work.target_cpu_percent}}}],
        },
    }


def manifests(work: Workload) -> dict[str, dict[str, Any]]:
    """File name → object."""
    return {"deployment.yaml": deployment(work), "service.yaml": service(work), "hpa.yaml": autoscaler(work)}
