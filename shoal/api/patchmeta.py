"""Strategic-merge patch metadata: which lists merge, and by which key, per struct type.

Kubernetes reads this from the Go struct tags (`patchStrategy:"merge"`,
`patchMergeKey:"name"`) through `LookupPatchMetadata`; shoal keeps the tags of the
core/v1 and apps/v1 types it serves in `TYPES`. `root_type(kind)` names the struct of a
kind's top level and `field_of(type, key)` the metadata of one field (every kind's
`metadata` is ObjectMeta). Kinds not listed get the default: maps merge, lists are
replaced. Pure data and lookups; safe from any thread.
"""

from __future__ import annotations

import dataclasses

@dataclasses.dataclass(frozen=True)
class Field:
    """Patch metadata of one struct field, from its Go tags."""

    strategy: str = ""
    """'merge' (lists merged by merge_key / scalar union; maps merged), 'replace', or ''
    (the default: maps merge, lists are replaced)."""
    merge_key: str = ""
    type: str = ""
    """Name in `TYPES` of the field's struct (or of the list's element struct)."""


MERGE = "merge"


def merge_by(key: str, type_: str = "") -> Field:
    return Field(MERGE, key, type_)


def struct(type_: str) -> Field:
    return Field("", "", type_)


_CONTAINER = {
    # core/v1 Container and EphemeralContainerCommon
    "ports": merge_by("containerPort"),
    "env": merge_by("name"),
    "volumeMounts": merge_by("mountPath"),
    "volumeDevices": merge_by("devicePath"),
}

TYPES: dict[str, dict[str, Field]] = {
    "ObjectMeta": {
        "finalizers": Field(MERGE),
        "ownerReferences": merge_by("uid"),
    },
    "PodTemplateSpec": {"metadata": struct("ObjectMeta"), "spec": struct("PodSpec")},
    "PodSpec": {
        "volumes": merge_by("name"),  # merge,retainKeys
        "initContainers": merge_by("name", "Container"),
        "containers": merge_by("name", "Container"),
        "ephemeralContainers": merge_by("name", "Container"),
        "imagePullSecrets": merge_by("name"),
        "hostAliases": merge_by("ip"),
        "topologySpreadConstraints": merge_by("topologyKey"),
        "schedulingGates": merge_by("name"),
        "resourceClaims": merge_by("name"),  # merge,retainKeys
    },
    "Container": _CONTAINER,
    "PodStatus": {
        "conditions": merge_by("type"),
        "podIPs": merge_by("ip"),
        "hostIPs": merge_by("ip"),
        "resourceClaimStatuses": merge_by("name"),  # merge,retainKeys
        "containerStatuses": struct("ContainerStatus"),
        "initContainerStatuses": struct("ContainerStatus"),
        "ephemeralContainerStatuses": struct("ContainerStatus"),
    },
    "ContainerStatus": {
        "allocatedResourcesStatus": merge_by("name"),
        "volumeMounts": merge_by("mountPath"),
    },
    "Pod": {"spec": struct("PodSpec"), "status": struct("PodStatus")},
    "DeploymentSpec": {"template": struct("PodTemplateSpec")},  # strategy: retainKeys
    "ReplicaSetSpec": {"template": struct("PodTemplateSpec")},
    "ConditionsStatus": {"conditions": merge_by("type")},
    "Deployment": {"spec": struct("DeploymentSpec"), "status": struct("ConditionsStatus")},
    "ReplicaSet": {"spec": struct("ReplicaSetSpec"), "status": struct("ConditionsStatus")},
    "ServiceSpec": {"ports": merge_by("port")},
    "Service": {"spec": struct("ServiceSpec"), "status": struct("ConditionsStatus")},
    "Namespace": {"status": struct("ConditionsStatus")},
    "PersistentVolumeClaim": {"status": struct("ConditionsStatus")},
    "ServiceAccount": {"secrets": merge_by("name")},
    "StatefulSetSpec": {"template": struct("PodTemplateSpec")},
    "DaemonSetSpec": {"template": struct("PodTemplateSpec")},  # updateStrategy: retainKeys
    "StatefulSet": {"spec": struct("StatefulSetSpec"), "status": struct("ConditionsStatus")},
    "DaemonSet": {"spec": struct("DaemonSetSpec"), "status": struct("ConditionsStatus")},
    "NodeStatus": {"conditions": merge_by("type"), "addresses": merge_by("type")},
    "Node": {"status": struct("NodeStatus")},
    # Endpoints (subsets), ConfigMap, Secret, Event: no list with a merge strategy
    # outside metadata.
}

UNKNOWN_KIND = "<unknown kind>"


def root_type(kind: str) -> str:
    return kind if kind in TYPES else UNKNOWN_KIND


_HAS_OBJECT_META = {
    "Pod", "Deployment", "ReplicaSet", "Service", "Namespace", "PersistentVolumeClaim",
    "ServiceAccount", "PodTemplateSpec", "StatefulSet", "DaemonSet", "Node", UNKNOWN_KIND,
}


def field_of(type_name: str, key: str) -> Field:
    if key == "metadata" and type_name in _HAS_OBJECT_META:
        return struct("ObjectMeta")
    return TYPES.get(type_name, {}).get(key, Field())
