"""Sidecar injection: a pure admission step that adds the `istio-proxy` container.

Who gets a sidecar (`needs_injection`), in Istio's order:

1. never pods with `hostNetwork`, and never twice (`sidecar.istio.io/status` present);
2. the pod's label or annotation `sidecar.istio.io/inject` ("true"/"false") decides
   when present (label first, as in current Istio);
3. else the namespace: label `istio-injection=enabled` or `shoal.io/mesh=enabled`
   (`istio-injection=disabled` wins over `shoal.io/mesh`).

What injection adds (`inject`): the `istio-proxy` container as a native sidecar, the
first init container with `restartPolicy: Always` (the node agent starts it first,
starts the rest only once it is ready — readiness GET :15021/healthz/ready — and stops
it when the app containers of a Job-style pod are done), running as UID/GID 1337 without privileges, with
resources, the `http-envoy-prom` port 15090, and downward-API env the node agent uses
to build the bootstrap; the `sidecar.istio.io/status` annotation (Istio's JSON shape),
Prometheus scrape annotations and the `security.istio.io/tlsMode=istio` label.

Per pod, Istio's annotations shape the sidecar (`sidecar_settings`):
`sidecar.istio.io/proxyCPU`, `proxyMemory`, `proxyCPULimit`, `proxyMemoryLimit` (its
resources) and `proxy.istio.io/config` (a ProxyConfig in YAML or JSON; its
`concurrency`). Envoy's worker count lands in the sidecar's `--concurrency` argument,
which the node agent runs (`concurrency_of`): the ProxyConfig's value, else ceil(CPU
limit) when the limit annotation is set (Istio's rule), else one worker.

A pod whose app container runs as UID 1337 is rejected (`validate_pod`): its traffic
would bypass capture. `admit_pod` is the admission entry point for the API server:
(pod, errors); the server raises `Invalid` with the errors if there are any. All
functions are pure and never modify their input.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from typing import Any

import yaml

from shoal.api.errors import FieldError, invalid
from shoal.api.quantity import QuantityError, parse_quantity
from shoal.mesh import bootstrap
from shoal.mesh.errors import InjectionError
from shoal.mesh.translate import names
from shoal.mesh.translate.model import SIDECAR_CONTAINER, STATUS_ANNOTATION

Obj = dict[str, Any]

INJECT_KEY = "sidecar.istio.io/inject"
NAMESPACE_LABELS = (("istio-injection", "enabled"), ("shoal.io/mesh", "enabled"))
DEFAULT_IMAGE = "shoal.local/proxyv2:envoy-1.40"
"""Image marker of the sidecar: the node agent runs shoal's Envoy for it, no pull."""


PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"
"""Istio's per-pod ProxyConfig (YAML or JSON); shoal reads its `concurrency`."""
RESOURCE_ANNOTATIONS = {
    "sidecar.istio.io/proxyCPU": ("requests", "cpu"),
    "sidecar.istio.io/proxyMemory": ("requests", "memory"),
    "sidecar.istio.io/proxyCPULimit": ("limits", "cpu"),
    "sidecar.istio.io/proxyMemoryLimit": ("limits", "memory"),
}
"""Istio's per-pod sidecar resource annotations -> the sidecar's resources."""


@dataclasses.dataclass(frozen=True)
class InjectOptions:
    image: str = DEFAULT_IMAGE
    proxy_uid: int = 1337
    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    cpu_limit: str = "2000m"
    memory_limit: str = "1Gi"
    concurrency: int = bootstrap.DEFAULT_CONCURRENCY
    """Envoy worker threads (--concurrency) when the pod asks for nothing else. Istio
    derives 2 from its default 2-core limit; on one machine every sidecar shares the same
    few cores, so shoal starts one worker (Linkerd's and Consul's default too) — a worker
    handles thousands of requests/s, and `bench/mesh.py` measured 1 cheaper per request
    than 2 on two cores. A pod gets more with `proxy.istio.io/config: {concurrency: N}`
    or a `sidecar.istio.io/proxyCPULimit` (then ceil(limit), Istio's rule)."""


@dataclasses.dataclass(frozen=True)
class SidecarSettings:
    """What a pod's annotations make of the sidecar: its resources and worker count."""

    resources: dict[str, dict[str, str]]
    concurrency: int
    """0: one worker per CPU of the machine (Istio's meaning of 0)."""


def sidecar_settings(pod: Obj, options: InjectOptions = InjectOptions()
                     ) -> tuple[SidecarSettings, list[FieldError]]:
    """The sidecar's resources and concurrency from the pod's Istio annotations, and the
    errors (field path `metadata.annotations[KEY]`) of the ones that are malformed."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    errors: list[FieldError] = []
    resources = {"requests": {"cpu": options.cpu_request, "memory": options.memory_request},
                 "limits": {"cpu": options.cpu_limit, "memory": options.memory_limit}}
    cpu_limit_set = None
    for key, (section, resource) in RESOURCE_ANNOTATIONS.items():
        value = annotations.get(key)
        if value is None:
            continue
        try:
            amount = parse_quantity(str(value))
            if amount <= 0:
                raise QuantityError("must be greater than zero")
        except QuantityError as exc:
            errors.append(invalid(f"metadata.annotations[{key}]", value, str(exc)))
            continue
        resources[section][resource] = str(value)
        if key == "sidecar.istio.io/proxyCPULimit":
            cpu_limit_set = amount
    for resource in ("cpu", "memory"):
        try:
            over = (parse_quantity(resources["requests"][resource])
                    > parse_quantity(resources["limits"][resource]))
        except QuantityError:
            continue
        if over:
            errors.append(invalid(
                "metadata.annotations", resources["requests"][resource],
                f"the sidecar's {resource} request must be less than or equal to its "
                f"{resource} limit ({resources['limits'][resource]})"))
    concurrency = options.concurrency
    if cpu_limit_set is not None:
        concurrency = max(1, math.ceil(cpu_limit_set))
    raw = annotations.get(PROXY_CONFIG_ANNOTATION)
    if raw is not None:
        path = f"metadata.annotations[{PROXY_CONFIG_ANNOTATION}]"
        try:
            config = yaml.safe_load(raw) if isinstance(raw, str) else None
        except yaml.YAMLError as exc:
            config = None
            errors.append(invalid(path, raw, f"not YAML or JSON: {exc}".splitlines()[0]))
        else:
            if not isinstance(config, dict):
                errors.append(invalid(path, raw, "must be a ProxyConfig mapping, "
                                                 "e.g. '{\"concurrency\": 2}'"))
                config = None
        if config and "concurrency" in config:
            value = config["concurrency"]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1024:
                errors.append(invalid(f"{path}.concurrency", value,
                                      "must be an integer from 0 (one worker per CPU) to 1024"))
            else:
                concurrency = value
    return SidecarSettings(resources, concurrency), errors


def concurrency_of(container: Obj, cpus: int) -> int:
    """Envoy workers for an injected sidecar container: its `--concurrency N` argument
    (what injection derived from the pod's annotations; 0 = one per CPU of the machine),
    else the default."""
    args = [str(a) for a in container.get("args") or []]
    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--concurrency" and i + 1 < len(args) else (
            arg.split("=", 1)[1] if arg.startswith("--concurrency=") else None)
        if value is not None and value.isdigit():
            return int(value) or max(1, cpus)
    return bootstrap.DEFAULT_CONCURRENCY


def _truthy(value: Any) -> bool | None:
    if value is None:
        return None
    return str(value).lower() in ("true", "yes", "y", "1", "enabled")


def needs_injection(pod: Obj, namespace: Obj | None) -> bool:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    if spec.get("hostNetwork") or STATUS_ANNOTATION in annotations:
        return False
    if any(c.get("name") == SIDECAR_CONTAINER for c in spec.get("containers") or []):
        return False
    for source in (labels, annotations):
        decided = _truthy(source.get(INJECT_KEY))
        if decided is not None:
            return decided
    ns_labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    if ns_labels.get("istio-injection") == "disabled":
        return False
    return any(ns_labels.get(k) == v for k, v in NAMESPACE_LABELS)


def validate_pod(pod: Obj, options: InjectOptions = InjectOptions()) -> list[FieldError]:
    """Reasons a pod cannot be meshed: an app container running as the proxy's UID, or
    malformed sidecar annotations (resources, proxy.istio.io/config)."""
    return _check(pod, options)[1]


def _check(pod: Obj, options: InjectOptions) -> tuple[SidecarSettings, list[FieldError]]:
    """The sidecar settings of `pod` and every reason it cannot be meshed, in one pass."""
    proxy_uid = options.proxy_uid
    settings, errors = sidecar_settings(pod, options)
    spec = pod.get("spec") or {}
    pod_uid = (spec.get("securityContext") or {}).get("runAsUser")
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(kind) or []):
            if container.get("name") == SIDECAR_CONTAINER:
                continue
            own = (container.get("securityContext") or {}).get("runAsUser")
            uid = own if own is not None else pod_uid
            if uid is not None and int(uid) == proxy_uid:
                path = (f"spec.{kind}[{index}].securityContext.runAsUser" if own is not None
                        else "spec.securityContext.runAsUser")
                errors.append(invalid(path, uid,
                    f"UID {proxy_uid} is reserved for the sidecar proxy: traffic of "
                    f"container {container.get('name')!r} would bypass the mesh"))
    return settings, errors


def sidecar_container(options: InjectOptions,
                      settings: SidecarSettings | None = None) -> Obj:
    settings = settings or sidecar_settings({}, options)[0]
    uid = options.proxy_uid
    def field(path: str) -> Obj:
        return {"valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}
    return {
        "name": SIDECAR_CONTAINER,
        "image": options.image,
        "args": ["proxy", "sidecar", "--concurrency", str(settings.concurrency)],
        "env": [
            {"name": "POD_NAME", **field("metadata.name")},
            {"name": "POD_NAMESPACE", **field("metadata.namespace")},
            {"name": "INSTANCE_IP", **field("status.podIP")},
            {"name": "SERVICE_ACCOUNT", **field("spec.serviceAccountName")},
        ],
        "ports": [{"containerPort": names.PROMETHEUS_PORT, "name": "http-envoy-prom",
                   "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": names.READINESS_PORT},
            "initialDelaySeconds": 0, "periodSeconds": 2, "timeoutSeconds": 3,
            "failureThreshold": 30,
        },
        "resources": copy.deepcopy(settings.resources),
        "securityContext": {
            "runAsUser": uid, "runAsGroup": uid, "runAsNonRoot": True,
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "privileged": False, "capabilities": {"drop": ["ALL"]},
        },
    }


def inject(pod: Obj, namespace: Obj | None = None,
           options: InjectOptions = InjectOptions()) -> Obj:
    """A copy of `pod` with the sidecar (whatever `needs_injection` says); raises
    InjectionError carrying the field errors when the pod cannot be meshed."""
    settings, errors = _check(pod, options)
    if errors:
        raise InjectionError(errors)
    result = copy.deepcopy(pod)
    meta = result.setdefault("metadata", {})
    spec = result.setdefault("spec", {})
    # A Kubernetes native sidecar (Istio's ENABLE_NATIVE_SIDECARS shape): the first init
    # container, restartPolicy Always. The node agent starts it before everything else,
    # holds the rest until it is ready, keeps it running, and stops it once the regular
    # containers of a Never/OnFailure pod have finished, so Jobs complete.
    sidecar = {**sidecar_container(options, settings), "restartPolicy": "Always"}
    spec["initContainers"] = [sidecar] + list(spec.get("initContainers") or [])
    annotations = meta.setdefault("annotations", {}) or {}
    meta["annotations"] = annotations
    annotations[STATUS_ANNOTATION] = json.dumps({
        "initContainers": [SIDECAR_CONTAINER], "containers": None, "volumes": [],
        "imagePullSecrets": None, "revision": "default"}, separators=(",", ":"))
    annotations.setdefault("prometheus.io/scrape", "true")
    annotations.setdefault("prometheus.io/port", str(names.PROMETHEUS_PORT))
    annotations.setdefault("prometheus.io/path", "/stats/prometheus")
    labels = meta.setdefault("labels", {}) or {}
    meta["labels"] = labels
    labels.setdefault("security.istio.io/tlsMode", "istio")
    app = labels.get("app.kubernetes.io/name") or labels.get("app") or meta.get("name") or ""
    if app:
        labels.setdefault("service.istio.io/canonical-name", app)
    return result


def admit_pod(pod: Obj, namespace: Obj | None,
              options: InjectOptions = InjectOptions()) -> tuple[Obj, list[FieldError]]:
    """Admission: (the pod, injected if it should be; field errors if it cannot be)."""
    if not needs_injection(pod, namespace):
        return pod, []
    try:
        return inject(pod, namespace, options), []
    except InjectionError as err:
        return pod, err.errors
