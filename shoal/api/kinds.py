"""The kinds the API serves: names, scope, REST paths, and how each is defaulted and checked.

One registry maps every kind to a `ResourceType` (what discovery, REST paths and the CLI
need) and to its behaviour: a structural schema (see `shoal.api.schema`), a defaulter
a semantic validator and a `shoal.api.strategy.Strategy` (the hooks the generic registry
calls around create, update and delete). Built-in kinds (core/v1, apps/v1 and the node
Lease, coordination.k8s.io/v1) are registered when this
module is imported; later kinds (Istio's, from `shoal.mesh`) call `register()` and then
behave like built-ins everywhere: `by_kind`, `by_resource`, `by_path`, `all_types`,
`defaults.apply_defaults` and `validation.validate`.

Lookups raise the API's own errors (`NotFound` for an unknown resource name on the CLI,
`BadRequest` for an unknown apiVersion/kind in a body), worded as Kubernetes words them.

Concurrency: register kinds at import/start-up time, before serving. Lookups only read;
the lookup index is rebuilt on each registration.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from shoal.api import errors
from shoal.api import schema as schemas
from shoal.api import strategy as strategies
from shoal.api.builtin import (batch, configs, cronjobs, events, namespaces, nodes, podstrategy,
                               pods, services, sets, storage, workloads)
from shoal.api.builtin import endpointslices, networkpolicies
from shoal.api.strategy import Strategy

DEFAULT_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

Defaulter = Callable[[dict[str, Any]], Any]
"""Mutates the object it is given in place (a private copy); its return value is ignored."""
Validator = Callable[[dict[str, Any], "dict[str, Any] | None"], list[errors.FieldError]]
"""(object, old object on update or None) -> every semantic problem as FieldErrors."""


@dataclasses.dataclass(frozen=True)
class ResourceType:
    group: str
    """API group: "" for core, "apps", "networking.istio.io"."""
    version: str
    """"v1"."""
    kind: str
    """"Deployment"."""
    plural: str
    """"deployments": the REST path segment and the CLI name."""
    singular: str
    """"deployment"."""
    namespaced: bool
    short_names: tuple[str, ...] = ()
    """("deploy",)."""
    subresources: tuple[str, ...] = ()
    """The subresources the registry serves: ("status", "scale"); a Namespace's
    "finalize". Others (pods/log, pods/exec) are served by handlers added with
    `shoal.apiserver.http.ApiServer.add_subresource`."""
    verbs: tuple[str, ...] = DEFAULT_VERBS
    """As in discovery."""
    categories: tuple[str, ...] = ()
    """("all",) for kinds `kubectl get all` shows."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """The CLI name: "deployments.apps", "pods"."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


@dataclasses.dataclass(frozen=True)
class Registration:
    """A kind's type plus its behaviour, as given to `register`."""

    type: ResourceType
    schema: Any = None
    defaulter: Defaulter | None = None
    validator: Validator | None = None
    name_format: str = "subdomain"
    """How object names are checked: "subdomain", "label" (DNS-1123) or "dns1035"."""
    strategy: Strategy = strategies.DEFAULT
    """The registry's per-kind hooks (status on create, allocation, graceful deletion)."""


_registry: dict[tuple[str, str, str], Registration] = {}
"""(group, version, kind) -> registration, in registration order."""
_by_name: dict[str, ResourceType] = {}
_by_path: dict[tuple[str, str, str], ResourceType] = {}


def register(
    rt: ResourceType, *, schema: Any = None, defaulter: Defaulter | None = None,
    validator: Validator | None = None, name_format: str = "subdomain",
    strategy: Strategy | None = None,
) -> None:
    """Serve a kind. `schema`: None (free-form besides apiVersion/kind/metadata), a
    `kubernetes.client` model name, a `schema.from_fields` mapping, an openAPIV3Schema
    dict, or a `schema.Node`. `defaulter(obj)` fills defaults in place; `validator(obj,
    old)` returns FieldErrors; `strategy` overrides the generic registry behaviour
    (`shoal.api.strategy`; None: the default strategy). Registering the same group/version/kind again replaces it.
    Raises ValueError if the plural is already served in that group/version by another kind."""
    if name_format not in ("subdomain", "label", "dns1035"):
        raise ValueError(f"name_format must be subdomain, label or dns1035, not {name_format!r}")
    key = (rt.group, rt.version, rt.kind)
    other = _by_path.get((rt.group, rt.version, rt.plural))
    if other is not None and (other.group, other.version, other.kind) != key:
        raise ValueError(f"{rt.resource} in {rt.api_version} is already served by kind {other.kind}")
    _registry[key] = Registration(rt, schema, defaulter, validator, name_format,
                                  strategy or strategies.DEFAULT)
    _schemas.pop(key, None)
    _reindex()


def _reindex() -> None:
    _by_name.clear()
    _by_path.clear()
    for reg in _registry.values():
        rt = reg.type
        _by_path[(rt.group, rt.version, rt.plural)] = rt
        names = [rt.plural, rt.singular, rt.kind, *rt.short_names]
        keys = list(names)
        if rt.group:
            keys += [f"{n}.{rt.group}" for n in names]
            keys += [f"{n}.{rt.version}.{rt.group}" for n in names]
        else:
            keys += [f"{n}.{rt.version}" for n in names]
        for k in keys:
            # First registered wins: built-ins keep "pods"; the preferred version of a
            # kind registered in several versions is the one registered first.
            _by_name.setdefault(k.lower(), rt)


def all_types() -> list[ResourceType]:
    """Every served kind, built-ins first, in registration order."""
    return [reg.type for reg in _registry.values()]


def by_resource(name: str) -> ResourceType:
    """CLI-style lookup: "pods", "pod", "po", "Pod", "deployments.apps", "deploy",
    "deployment.apps", "deployments.v1.apps"; case-insensitive. Raises NotFound."""
    rt = _by_name.get(name.strip().lower())
    if rt is None:
        raise errors.NotFound(f'the server doesn\'t have a resource type "{name}"')
    return rt


def by_kind(api_version: str, kind: str) -> ResourceType:
    """The type of a body's apiVersion/kind. Raises BadRequest naming both when unknown."""
    return registration(api_version, kind).type


def by_path(group: str, version: str, plural: str) -> ResourceType | None:
    """REST path lookup: /api/v1/pods -> ("", "v1", "pods"); /apis/apps/v1/deployments."""
    return _by_path.get((group, version, plural))


def strategy_of(rt: ResourceType) -> Strategy:
    """The strategy of a served type (the default one for a type not registered)."""
    reg = _registry.get((rt.group, rt.version, rt.kind))
    return reg.strategy if reg is not None else strategies.DEFAULT


def registration(api_version: str, kind: str) -> Registration:
    """The registration of apiVersion/kind (schema, defaulter, validator); BadRequest if none."""
    group, _, version = api_version.rpartition("/")
    reg = _registry.get((group, version, kind))
    if reg is None:
        raise errors.BadRequest(_unknown_kind_message(api_version, kind))
    return reg


def _unknown_kind_message(api_version: str, kind: str) -> str:
    msg = f'no kind "{kind}" is registered for version "{api_version}"'
    same = [r.type for r in _registry.values() if r.type.kind.lower() == kind.lower()]
    here = [rt for rt in same if rt.api_version == api_version]
    if here:
        return msg + f' (did you mean "{here[0].kind}"?)'
    if same:
        versions = ", ".join(f'"{rt.api_version}"' for rt in same)
        return msg + f" ({same[0].kind} is served in {versions})"
    return msg


_schemas: dict[tuple[str, str, str], Any] = {}


def schema_of(reg: Registration) -> Any:
    """The compiled top-level schema node of a registration (cached)."""
    rt = reg.type
    key = (rt.group, rt.version, rt.kind)
    node = _schemas.get(key)
    if node is None:
        node = schemas.for_kind(reg.schema)
        _schemas[key] = node
    return node


# -- built-in kinds -------------------------------------------------------------------------

def _builtin(rt: ResourceType, model: str, defaulter: Defaulter | None,
             validator: Validator | None, name_format: str = "subdomain",
             strategy: Strategy | None = None) -> None:
    register(rt, schema=model, defaulter=defaulter, validator=validator, name_format=name_format,
             strategy=strategy)


_builtin(ResourceType("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",),
                      ("status", "finalize")),
         "V1Namespace", namespaces.default_namespace, namespaces.validate_namespace, "label",
         namespaces.NamespaceStrategy())
_builtin(ResourceType("", "v1", "Pod", "pods", "pod", True, ("po",), ("status",),
                      categories=("all",)),
         "V1Pod", pods.default_pod, pods.validate_pod, strategy=podstrategy.PodStrategy())
_builtin(ResourceType("", "v1", "Service", "services", "service", True, ("svc",), ("status",),
                      categories=("all",)),
         "V1Service", services.default_service, services.validate_service, "dns1035",
         services.ServiceStrategy())
_builtin(ResourceType("", "v1", "Endpoints", "endpoints", "endpoints", True, ("ep",)),
         "V1Endpoints", services.default_endpoints, services.validate_endpoints)
_builtin(ResourceType("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",)),
         "V1ConfigMap", None, configs.validate_configmap)
_builtin(ResourceType("", "v1", "Secret", "secrets", "secret", True),
         "V1Secret", configs.default_secret, configs.validate_secret)
_builtin(ResourceType("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",)),
         "V1ServiceAccount", None, configs.validate_serviceaccount)
_builtin(ResourceType("", "v1", "Event", "events", "event", True, ("ev",)),
         "CoreV1Event", None, events.validate_event)
_builtin(ResourceType("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims",
                      "persistentvolumeclaim", True, ("pvc",), ("status",)),
         "V1PersistentVolumeClaim", storage.default_pvc, storage.validate_pvc,
         strategy=storage.PvcStrategy())
_builtin(ResourceType("apps", "v1", "Deployment", "deployments", "deployment", True, ("deploy",),
                      ("status", "scale"), categories=("all",)),
         "V1Deployment", workloads.default_deployment, workloads.validate_deployment)
_builtin(ResourceType("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, ("rs",),
                      ("status", "scale"), categories=("all",)),
         "V1ReplicaSet", workloads.default_replicaset, workloads.validate_replicaset)
_builtin(ResourceType("batch", "v1", "Job", "jobs", "job", True, (), ("status",), categories=("all",)),
         "V1Job", batch.default_job, batch.validate_job, strategy=batch.JobStrategy())
_builtin(ResourceType("batch", "v1", "CronJob", "cronjobs", "cronjob", True, ("cj",), ("status",),
                      categories=("all",)),
         "V1CronJob", cronjobs.default_cronjob, cronjobs.validate_cronjob)

_builtin(ResourceType("", "v1", "Node", "nodes", "node", False, ("no",), ("status",)),
         "V1Node", None, nodes.validate_node, strategy=nodes.NodeStrategy())
_builtin(ResourceType("coordination.k8s.io", "v1", "Lease", "leases", "lease", True),
         "V1Lease", None, nodes.validate_lease)
_builtin(ResourceType("apps", "v1", "StatefulSet", "statefulsets", "statefulset", True, ("sts",),
                      ("status", "scale"), categories=("all",)),
         "V1StatefulSet", sets.default_statefulset, sets.validate_statefulset)
_builtin(ResourceType("apps", "v1", "DaemonSet", "daemonsets", "daemonset", True, ("ds",),
                      ("status",), categories=("all",)),
         "V1DaemonSet", sets.default_daemonset, sets.validate_daemonset)
_builtin(ResourceType("apps", "v1", "ControllerRevision", "controllerrevisions",
                      "controllerrevision", True),
         "V1ControllerRevision", None, sets.validate_controllerrevision)
# -- wip-netpol: NetworkPolicy (enforced by shoal.kubeproxy.policysync), EndpointSlice --
_builtin(ResourceType("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy",
                      True, ("netpol",)),
         "V1NetworkPolicy", networkpolicies.default_networkpolicy, networkpolicies.validate_networkpolicy)
_builtin(ResourceType("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True),
         "V1EndpointSlice", endpointslices.default_endpointslice, endpointslices.validate_endpointslice)
# -- end wip-netpol --

BUILTIN_MODELS = [reg.schema for reg in _registry.values()]
"""Client model names of the built-in kinds (for `schema.warm_up`)."""


def registration_of(obj: Any) -> Registration:
    """The registration of a request body; BadRequest for a non-object body or a missing
    or unknown apiVersion/kind (never shows the body: it may hold secrets)."""
    if not isinstance(obj, dict):
        raise errors.BadRequest(
            f"the object must be a JSON object, not {type(obj).__name__}")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    missing = [k for k, v in (("apiVersion", api_version), ("kind", kind)) if not v]
    if missing:
        raise errors.BadRequest(
            f"Object '{missing[0]}' is missing: every object needs apiVersion and kind "
            "(e.g. apiVersion: apps/v1, kind: Deployment)")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise errors.BadRequest("apiVersion and kind must be strings")
    return registration(api_version, kind)
