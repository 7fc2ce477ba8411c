"""Container environment from a pod spec (pure): env, envFrom, valueFrom sources.

`referenced_objects(pod)` names the ConfigMaps and Secrets a pod needs (env, envFrom,
volumes); the worker fetches them and passes what exists to `container_env`, which
resolves in Kubernetes' order: every `envFrom` source in order (prefix applied; keys that
are not valid variable names are skipped as the kubelet does), then `env` entries in order,
later entries overriding earlier ones, `$(VAR)` references expanded against what came
before. Errors carry Kubernetes' messages (`configmap "x" not found`, `couldn't find key
k in ConfigMap ns/x`) and raise `ContainerConfigError`.
"""

from __future__ import annotations

import base64
import re
from decimal import ROUND_CEILING
from typing import Any, Mapping

from shoal.api.quantity import parse_quantity
from shoal.node.errors import ContainerConfigError

Obj = Mapping[str, Any]
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")
_VAR_REF = re.compile(r"\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)|\$\$")


def referenced_objects(pod: Obj) -> tuple[set[str], set[str]]:
    """(ConfigMap names, Secret names) the pod's containers and volumes reference."""
    spec = pod.get("spec") or {}
    configmaps: set[str] = set()
    secrets: set[str] = set()
    for c in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
        for src in c.get("envFrom") or []:
            if src.get("configMapRef"):
                configmaps.add(src["configMapRef"]["name"])
            if src.get("secretRef"):
                secrets.add(src["secretRef"]["name"])
        for env in c.get("env") or []:
            vf = env.get("valueFrom") or {}
            if vf.get("configMapKeyRef"):
                configmaps.add(vf["configMapKeyRef"]["name"])
            if vf.get("secretKeyRef"):
                secrets.add(vf["secretKeyRef"]["name"])
    for vol in spec.get("volumes") or []:
        if vol.get("configMap"):
            configmaps.add(vol["configMap"]["name"])
        if vol.get("secret"):
            secrets.add(vol["secret"]["secretName"])
        for src in (vol.get("projected") or {}).get("sources") or []:
            if src.get("configMap"):
                configmaps.add(src["configMap"]["name"])
            if src.get("secret"):
                secrets.add(src["secret"]["name"])
    return configmaps, secrets


def object_data(obj: Obj) -> dict[str, bytes]:
    """Every key of a ConfigMap (data + binaryData) or Secret (base64 data, stringData) as bytes."""
    out: dict[str, bytes] = {}
    if obj.get("kind") == "Secret" or "type" in obj:
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v)
        for k, v in (obj.get("stringData") or {}).items():
            out[k] = v.encode()
        return out
    for k, v in (obj.get("data") or {}).items():
        out[k] = v.encode()
    for k, v in (obj.get("binaryData") or {}).items():
        out[k] = base64.b64decode(v)
    return out


def _key_value(kind: str, namespace: str, objects: Mapping[str, Obj | None], ref: Obj) -> str | None:
    name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
    obj = objects.get(name)
    if obj is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    data = object_data(obj)
    if key not in data:
        if optional:
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key].decode(errors="replace")


def field_value(pod: Obj, path: str, pod_ip: str | None) -> str:
    """A downward-API fieldRef value."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip or "",
        "status.podIPs": pod_ip or "",
        "status.hostIP": (pod.get("status") or {}).get("hostIP", ""),
    }
    if path in simple:
        return simple[path]
    m = _LABEL_REF.match(path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    raise ContainerConfigError(f"unsupported fieldRef fieldPath {path!r}")


def resource_value(container: Obj, ref: Obj) -> str:
    """A resourceFieldRef value: limits.cpu / requests.memory ... divided by divisor, rounded up."""
    resource = ref.get("resource", "")
    kind, _, name = resource.partition(".")
    res = container.get("resources") or {}
    raw = (res.get(kind) or {}).get(name)
    if raw is None and kind == "requests":
        raw = (res.get("limits") or {}).get(name)
    if raw is None:
        raw = "0"  # Kubernetes substitutes node allocatable; a single node: report 0 = unbounded
    value = parse_quantity(raw) / parse_quantity(ref.get("divisor") or "1")
    return str(int(value.to_integral_value(rounding=ROUND_CEILING)))


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known names replaced, `$$` escapes, unknown kept."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, value)


def container_env(
    pod: Obj,
    container: Obj,
    *,
    configmaps: Mapping[str, Obj | None],
    secrets: Mapping[str, Obj | None],
    pod_ip: str | None,
) -> dict[str, str]:
    """The container's environment (without the image's; the runtime merges that first)."""
    namespace = (pod.get("metadata") or {}).get("namespace", "default")
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        for kind, field, objects in (("ConfigMap", "configMapRef", configmaps), ("Secret", "secretRef", secrets)):
            ref = src.get(field)
            if not ref:
                continue
            obj = objects.get(ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{kind.lower()} "{ref["name"]}" not found')
            for key, value in object_data(obj).items():
                if _ENV_NAME.match(prefix + key):
                    env[prefix + key] = value.decode(errors="replace")
    for item in container.get("env") or []:
        name = item["name"]
        vf = item.get("valueFrom")
        if not vf:
            env[name] = expand(item.get("value", ""), env)
            continue
        if vf.get("configMapKeyRef"):
            value = _key_value("ConfigMap", namespace, configmaps, vf["configMapKeyRef"])
        elif vf.get("secretKeyRef"):
            value = _key_value("Secret", namespace, secrets, vf["secretKeyRef"])
        elif vf.get("fieldRef"):
            value = field_value(pod, vf["fieldRef"]["fieldPath"], pod_ip)
        elif vf.get("resourceFieldRef"):
            value = resource_value(container, vf["resourceFieldRef"])
        else:
            raise ContainerConfigError(f"env {name}: valueFrom has no supported source")
        if value is not None:
            env[name] = value
    return env
