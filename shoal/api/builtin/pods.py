"""Pods and pod templates: Kubernetes' defaults (`SetDefaults_PodSpec`, `_Container`,
`_Probe`, `_Volume`, `_Pod`) and validation (`ValidatePodSpec`, `ValidatePodUpdate`).

The pod-template functions are shared with Deployments and ReplicaSets
(`default_pod_template`, `validate_pod_template`). Pure; see the package docstring.
"""

from __future__ import annotations

from typing import Any

from shoal.api import errors, names
from shoal.api.builtin import fields as f
from shoal.api.builtin.fields import Errs, as_dict, as_list, set_default
from shoal.api.quantity import QuantityError, parse_quantity

PROTOCOLS = ("TCP", "UDP", "SCTP")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef")
VOLUME_MODE_SOURCES = ("configMap", "secret", "downwardAPI", "projected")
DEFAULT_FILE_MODE = 0o644  # 420: configMap/secret/downwardAPI/projected defaultMode
MAX_ID = 2147483647
TERMINATION_MESSAGE_PATH = "/dev/termination-log"


def image_pull_policy(image: str) -> str:
    """Always for ':latest' or an untagged image, IfNotPresent for a tag or a digest."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


# -- defaults -------------------------------------------------------------------------------

def default_pod(pod: dict[str, Any]) -> None:
    spec = f.child_dict(pod, "spec")
    if spec is None:
        return
    default_pod_spec(spec)
    # Pod-only rules (not applied to templates, as in Kubernetes' SetDefaults_Pod).
    set_default(spec, "enableServiceLinks", True)
    # What Kubernetes' ServiceAccount admission does; the mesh derives identity from it.
    set_default(spec, "serviceAccountName", "default")
    for key in ("containers", "initContainers"):
        for c in as_list(spec.get(key)):
            resources = as_dict(as_dict(c).get("resources"))
            limits = resources.get("limits")
            if isinstance(limits, dict) and limits:
                requests = f.child_dict(resources, "requests")
                if requests is not None:
                    for name, value in limits.items():
                        requests.setdefault(name, value)


def default_pod_template(template: dict[str, Any]) -> None:
    spec = f.child_dict(template, "spec")
    if spec is not None:
        default_pod_spec(spec)


def default_pod_spec(spec: dict[str, Any]) -> None:
    set_default(spec, "dnsPolicy", "ClusterFirst")
    set_default(spec, "restartPolicy", "Always")
    set_default(spec, "terminationGracePeriodSeconds", 30)
    set_default(spec, "securityContext", {})
    set_default(spec, "schedulerName", "default-scheduler")
    host_network = spec.get("hostNetwork") is True
    for key in ("containers", "initContainers"):
        for c in as_list(spec.get(key)):
            if isinstance(c, dict):
                _default_container(c, host_network)
    for vol in as_list(spec.get("volumes")):
        if isinstance(vol, dict):
            _default_volume(vol)


def _default_container(c: dict[str, Any], host_network: bool) -> None:
    if isinstance(c.get("image"), str):
        set_default(c, "imagePullPolicy", image_pull_policy(c["image"]))
    set_default(c, "terminationMessagePath", TERMINATION_MESSAGE_PATH)
    set_default(c, "terminationMessagePolicy", "File")
    set_default(c, "resources", {})
    for port in as_list(c.get("ports")):
        if isinstance(port, dict):
            set_default(port, "protocol", "TCP")
            if host_network and f.is_int(port.get("containerPort")):
                set_default(port, "hostPort", port["containerPort"])
    for env in as_list(c.get("env")):
        field_ref = as_dict(as_dict(as_dict(env).get("valueFrom")).get("fieldRef"))
        if field_ref:
            set_default(field_ref, "apiVersion", "v1")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(key)
        if isinstance(probe, dict):
            _default_probe(probe)
    lifecycle = as_dict(c.get("lifecycle"))
    for key in ("postStart", "preStop"):
        _default_http_get(as_dict(lifecycle.get(key)))


def _default_probe(probe: dict[str, Any]) -> None:
    # Kubernetes defaults these when zero as well as when absent.
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10),
                       ("successThreshold", 1), ("failureThreshold", 3)):
        if not probe.get(key):
            probe[key] = value
    _default_http_get(probe)


def _default_http_get(handler: dict[str, Any]) -> None:
    http_get = handler.get("httpGet")
    if isinstance(http_get, dict):
        if not http_get.get("path"):
            http_get["path"] = "/"
        if not http_get.get("scheme"):
            http_get["scheme"] = "HTTP"


def _default_volume(vol: dict[str, Any]) -> None:
    if not any(v is not None for k, v in vol.items() if k != "name"):
        vol["emptyDir"] = {}
        return
    for key in VOLUME_MODE_SOURCES:
        source = vol.get(key)
        if isinstance(source, dict):
            set_default(source, "defaultMode", DEFAULT_FILE_MODE)
            if key == "downwardAPI":
                for item in as_list(source.get("items")):
                    ref = as_dict(as_dict(item).get("fieldRef"))
                    if ref:
                        set_default(ref, "apiVersion", "v1")
    host_path = vol.get("hostPath")
    if isinstance(host_path, dict):
        set_default(host_path, "type", "")


# -- validation -----------------------------------------------------------------------------

def validate_pod(pod: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs = validate_pod_spec(as_dict(pod.get("spec")), "spec")
    if old is not None:
        errs += validate_pod_update(as_dict(pod.get("spec")), as_dict(old.get("spec")))
    return errs


def validate_pod_template(template: Any, path: str) -> Errs:
    template = as_dict(template)
    meta = as_dict(template.get("metadata"))
    errs = f.labels(f"{path}.metadata.labels", meta.get("labels"))
    errs += validate_pod_spec(as_dict(template.get("spec")), f"{path}.spec")
    return errs


def validate_pod_spec(spec: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    volumes, errs_v = _validate_volumes(as_list(spec.get("volumes")), f"{path}.volumes")
    errs += errs_v
    containers = as_list(spec.get("containers"))
    if not containers:
        errs.append(errors.required(f"{path}.containers"))
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, c in enumerate(as_list(spec.get(key))):
            c = as_dict(c)
            cpath = f"{path}.{key}[{i}]"
            name = c.get("name")
            if isinstance(name, str) and name:
                if name in seen:
                    errs.append(errors.duplicate(f"{cpath}.name", name))
                seen.add(name)
            errs += _validate_container(c, cpath, volumes, init=key == "initContainers")

    errs += f.one_of(f"{path}.restartPolicy", spec.get("restartPolicy"), RESTART_POLICIES)
    dns_policy = spec.get("dnsPolicy")
    errs += f.one_of(f"{path}.dnsPolicy", dns_policy, DNS_POLICIES)
    dns_config = spec.get("dnsConfig")
    if dns_policy == "None" and not as_list(as_dict(dns_config).get("nameservers")):
        errs.append(errors.required(
            f"{path}.dnsConfig.nameservers",
            "must provide at least one DNS nameserver when `dnsPolicy` is None"))
    nameservers = as_list(as_dict(dns_config).get("nameservers"))
    if len(nameservers) > 3:
        errs.append(errors.invalid(f"{path}.dnsConfig.nameservers", nameservers,
                                   "must not have more than 3 nameservers"))
    for i, ns in enumerate(nameservers):
        errs += f.check_format(f"{path}.dnsConfig.nameservers[{i}]", ns, names.check_ip)
    errs += f.at_least(f"{path}.terminationGracePeriodSeconds",
                       spec.get("terminationGracePeriodSeconds"), 0)
    errs += f.between(f"{path}.activeDeadlineSeconds", spec.get("activeDeadlineSeconds"), 1, MAX_ID)
    errs += f.labels(f"{path}.nodeSelector", spec.get("nodeSelector"))
    for key in ("serviceAccountName", "serviceAccount"):
        errs += f.check_format(f"{path}.{key}", spec.get(key), names.check_dns1123_subdomain)
    for key in ("hostname", "subdomain"):
        errs += f.check_format(f"{path}.{key}", spec.get(key), names.check_dns1123_label)
    if spec.get("nodeName"):
        errs += f.check_format(f"{path}.nodeName", spec.get("nodeName"), names.check_dns1123_subdomain)
    sc = as_dict(spec.get("securityContext"))
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        errs += f.between(f"{path}.securityContext.{key}", sc.get(key), 0, MAX_ID)
    for i, gid in enumerate(as_list(sc.get("supplementalGroups"))):
        errs += f.between(f"{path}.securityContext.supplementalGroups[{i}]", gid, 0, MAX_ID)
    for i, secret in enumerate(as_list(spec.get("imagePullSecrets"))):
        errs += f.required_str(f"{path}.imagePullSecrets[{i}].name", as_dict(secret).get("name"))
    for i, alias in enumerate(as_list(spec.get("hostAliases"))):
        alias = as_dict(alias)
        errs += f.required_str(f"{path}.hostAliases[{i}].ip", alias.get("ip"))
        errs += f.check_format(f"{path}.hostAliases[{i}].ip", alias.get("ip"), names.check_ip)
    for i, tol in enumerate(as_list(spec.get("tolerations"))):
        errs += _validate_toleration(as_dict(tol), f"{path}.tolerations[{i}]")
    return errs


_VOLUME_SOURCE_REQUIRED = {
    "configMap": "name",
    "secret": "secretName",
    "persistentVolumeClaim": "claimName",
    "hostPath": "path",
    "nfs": "server",
}


def _validate_volumes(volumes: list[Any], path: str) -> tuple[set[str], Errs]:
    errs: Errs = []
    seen: set[str] = set()
    for i, vol in enumerate(volumes):
        vol = as_dict(vol)
        vpath = f"{path}[{i}]"
        name = vol.get("name")
        if not name:
            errs.append(errors.required(f"{vpath}.name"))
        elif isinstance(name, str):
            errs += f.check_format(f"{vpath}.name", name, names.check_dns1123_label)
            if name in seen:
                errs.append(errors.duplicate(f"{vpath}.name", name))
            seen.add(name)
        sources = [k for k, v in vol.items() if k != "name" and v is not None]
        if not sources:
            errs.append(errors.required(vpath, "must specify a volume type"))
        for extra in sources[1:]:
            errs.append(errors.forbidden(f"{vpath}.{extra}", "may not specify more than 1 volume type"))
        for source in sources:
            body = as_dict(vol.get(source))
            key = _VOLUME_SOURCE_REQUIRED.get(source)
            if key:
                errs += f.required_str(f"{vpath}.{source}.{key}", body.get(key))
            if source in VOLUME_MODE_SOURCES:
                errs += f.between(f"{vpath}.{source}.defaultMode", body.get("defaultMode"), 0, 0o777)
                for j, item in enumerate(as_list(body.get("items"))):
                    errs += _validate_key_to_path(as_dict(item), f"{vpath}.{source}.items[{j}]", source)
            if source == "emptyDir":
                medium = body.get("medium")
                if medium not in (None, "", "Memory") and not str(medium).startswith("HugePages"):
                    errs.append(errors.unsupported(f"{vpath}.emptyDir.medium", medium, ["", "Memory"]))
            if source == "hostPath":
                errs += f.one_of(f"{vpath}.hostPath.type", body.get("type"), (
                    "", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                    "CharDevice", "BlockDevice"))
    return seen, errs


def _validate_key_to_path(item: dict[str, Any], path: str, source: str) -> Errs:
    errs: Errs = []
    if source != "downwardAPI":
        errs += f.required_str(f"{path}.key", item.get("key"))
    rel = item.get("path")
    errs += f.required_str(f"{path}.path", rel)
    errs += _relative_path(f"{path}.path", rel)
    errs += f.between(f"{path}.mode", item.get("mode"), 0, 0o777)
    return errs


def _relative_path(path: str, value: Any) -> Errs:
    if not isinstance(value, str) or not value:
        return []
    if value.startswith("/"):
        return [errors.invalid(path, value, "must be a relative path")]
    if ".." in value.split("/"):
        return [errors.invalid(path, value, "must not contain '..'")]
    return []


def _validate_container(c: dict[str, Any], path: str, volumes: set[str], *, init: bool) -> Errs:
    errs: Errs = []
    name = c.get("name")
    errs += f.required_str(f"{path}.name", name)
    errs += f.check_format(f"{path}.name", name, names.check_dns1123_label)
    image = c.get("image")
    if image is None or (isinstance(image, str) and not image.strip()):
        errs.append(errors.required(f"{path}.image"))
    errs += f.one_of(f"{path}.imagePullPolicy", c.get("imagePullPolicy"), PULL_POLICIES)
    errs += f.one_of(f"{path}.terminationMessagePolicy", c.get("terminationMessagePolicy"),
                     MESSAGE_POLICIES)
    restart = c.get("restartPolicy")
    if restart is not None:
        if init:
            errs += f.one_of(f"{path}.restartPolicy", restart, ("Always",))
        else:
            errs.append(errors.forbidden(f"{path}.restartPolicy",
                                         "may not be set for non-init containers"))
    sidecar = init and restart == "Always"

    port_names: set[str] = set()
    for i, port in enumerate(as_list(c.get("ports"))):
        port = as_dict(port)
        ppath = f"{path}.ports[{i}]"
        errs += f.port_number(f"{ppath}.containerPort", port.get("containerPort"))
        if port.get("hostPort"):
            errs += f.port_number(f"{ppath}.hostPort", port.get("hostPort"))
        errs += f.one_of(f"{ppath}.protocol", port.get("protocol"), PROTOCOLS)
        pname = port.get("name")
        if isinstance(pname, str) and pname:
            errs += f.check_format(f"{ppath}.name", pname, names.check_iana_svc_name)
            if pname in port_names:
                errs.append(errors.duplicate(f"{ppath}.name", pname))
            port_names.add(pname)

    for i, env in enumerate(as_list(c.get("env"))):
        errs += _validate_env(as_dict(env), f"{path}.env[{i}]")
    for i, src in enumerate(as_list(c.get("envFrom"))):
        src = as_dict(src)
        epath = f"{path}.envFrom[{i}]"
        refs = [k for k in ("configMapRef", "secretRef") if src.get(k) is not None]
        if not refs:
            errs.append(errors.required(epath, "must specify one of: `configMapRef` or `secretRef`"))
        elif len(refs) > 1:
            errs.append(errors.forbidden(epath, "may not have more than one field specified at a time"))
        for ref in refs:
            errs += f.required_str(f"{epath}.{ref}.name", as_dict(src[ref]).get("name"))
        errs += f.check_format(f"{epath}.prefix", src.get("prefix") or None, names.check_env_var_name)

    mount_paths: set[str] = set()
    for i, mount in enumerate(as_list(c.get("volumeMounts"))):
        mount = as_dict(mount)
        mpath = f"{path}.volumeMounts[{i}]"
        vname = mount.get("name")
        if not vname:
            errs.append(errors.required(f"{mpath}.name"))
        elif vname not in volumes:
            errs.append(errors.FieldError(f"{mpath}.name", "Not found", "", vname, True))
        target = mount.get("mountPath")
        if not target:
            errs.append(errors.required(f"{mpath}.mountPath"))
        elif isinstance(target, str):
            if target in mount_paths:
                errs.append(errors.invalid(f"{mpath}.mountPath", target, "must be unique"))
            mount_paths.add(target)
        errs += _relative_path(f"{mpath}.subPath", mount.get("subPath"))

    errs += _validate_resources(as_dict(c.get("resources")), f"{path}.resources")

    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(key)
        if probe is None:
            continue
        if init and not sidecar:
            errs.append(errors.forbidden(
                f"{path}.{key}", "may not be set for init containers without restartPolicy=Always"))
            continue
        errs += _validate_probe(as_dict(probe), f"{path}.{key}", liveness=key != "readinessProbe")
    lifecycle = as_dict(c.get("lifecycle"))
    for key in ("postStart", "preStop"):
        if lifecycle.get(key) is not None:
            errs += _validate_handler(as_dict(lifecycle[key]), f"{path}.lifecycle.{key}",
                                      LIFECYCLE_HANDLERS)

    sc = as_dict(c.get("securityContext"))
    for key in ("runAsUser", "runAsGroup"):
        errs += f.between(f"{path}.securityContext.{key}", sc.get(key), 0, MAX_ID)
    if sc.get("privileged") is True and sc.get("allowPrivilegeEscalation") is False:
        errs.append(errors.invalid(
            f"{path}.securityContext", "privileged",
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
    return errs


def _validate_env(env: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    name = env.get("name")
    errs += f.required_str(f"{path}.name", name)
    errs += f.check_format(f"{path}.name", name or None, names.check_env_var_name)
    value_from = env.get("valueFrom")
    if value_from is None:
        return errs
    value_from = as_dict(value_from)
    vpath = f"{path}.valueFrom"
    if env.get("value"):
        errs.append(errors.invalid(vpath, "", "may not be specified when `value` is not empty"))
    sources = [k for k in ENV_SOURCES if value_from.get(k) is not None]
    if not sources:
        errs.append(errors.invalid(vpath, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                              "`configMapKeyRef` or `secretKeyRef`"))
    elif len(sources) > 1:
        errs.append(errors.invalid(vpath, "", "may not have more than one field specified at a time"))
    for source in sources:
        body = as_dict(value_from[source])
        spath = f"{vpath}.{source}"
        if source == "fieldRef":
            errs += f.required_str(f"{spath}.fieldPath", body.get("fieldPath"))
        elif source == "resourceFieldRef":
            errs += f.required_str(f"{spath}.resource", body.get("resource"))
        elif source in ("configMapKeyRef", "secretKeyRef"):
            errs += f.required_str(f"{spath}.name", body.get("name"))
            errs += f.required_str(f"{spath}.key", body.get("key"))
            errs += f.check_format(f"{spath}.key", body.get("key") or None, names.check_config_key)
    return errs


_STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage", "storage")


def _resource_name_errors(path: str, name: Any) -> Errs:
    if not isinstance(name, str):
        return []
    if name in _STANDARD_RESOURCES or name.startswith("hugepages-") or "/" in name:
        return [errors.invalid(path, name, m) for m in names.check_qualified_name(name)] if "/" in name else []
    return [errors.invalid(path, name, "must be a standard resource type or fully qualified")]


def validate_resource_list(values: Any, path: str) -> tuple[dict[str, Any], Errs]:
    """Checks a ResourceList; returns the parsed quantities of the valid entries."""
    errs: Errs = []
    parsed = {}
    for name, raw in as_dict(values).items():
        rpath = f"{path}[{name}]"
        errs += _resource_name_errors(rpath, name)
        try:
            q = parse_quantity(raw)
        except QuantityError:
            continue  # reported by the structural schema
        if q < 0:
            errs.append(errors.invalid(rpath, raw, "must be greater than or equal to 0"))
        parsed[name] = q
    return parsed, errs


def _validate_resources(resources: dict[str, Any], path: str) -> Errs:
    limits, errs = validate_resource_list(resources.get("limits"), f"{path}.limits")
    requests, errs_r = validate_resource_list(resources.get("requests"), f"{path}.requests")
    errs += errs_r
    raw_limits = as_dict(resources.get("limits"))
    raw_requests = as_dict(resources.get("requests"))
    for name, req in requests.items():
        if name in limits and req > limits[name]:
            errs.append(errors.invalid(
                f"{path}.requests[{name}]", raw_requests[name],
                f"must be less than or equal to {name} limit of {raw_limits[name]}"))
    return errs


def _validate_handler(handler: dict[str, Any], path: str, kinds: tuple[str, ...]) -> Errs:
    present = [k for k in kinds if handler.get(k) is not None]
    if not present:
        return [errors.required(path, "must specify a handler type")]
    errs = [errors.forbidden(f"{path}.{k}", "may not specify more than 1 handler type")
            for k in present[1:]]
    kind = present[0]
    body = as_dict(handler[kind])
    hpath = f"{path}.{kind}"
    if kind == "exec":
        if not as_list(body.get("command")):
            errs.append(errors.required(f"{hpath}.command"))
    elif kind == "httpGet":
        errs += f.port_or_name(f"{hpath}.port", body.get("port"))
        errs += f.one_of(f"{hpath}.scheme", body.get("scheme"), ("HTTP", "HTTPS"))
    elif kind == "tcpSocket":
        errs += f.port_or_name(f"{hpath}.port", body.get("port"))
    elif kind == "grpc":
        errs += f.port_number(f"{hpath}.port", body.get("port"))
    elif kind == "sleep":
        errs += f.at_least(f"{hpath}.seconds", body.get("seconds"), 0)
    return errs


def _validate_probe(probe: dict[str, Any], path: str, *, liveness: bool) -> Errs:
    errs = _validate_handler(probe, path, PROBE_HANDLERS)
    errs += f.at_least(f"{path}.initialDelaySeconds", probe.get("initialDelaySeconds"), 0)
    for key in ("timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold",
                "terminationGracePeriodSeconds"):
        errs += f.at_least(f"{path}.{key}", probe.get(key), 1)
    success = probe.get("successThreshold")
    if liveness and f.is_int(success) and success != 1:
        errs.append(errors.invalid(f"{path}.successThreshold", success, "must be 1"))
    return errs


def _validate_toleration(tol: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    key, op = tol.get("key"), tol.get("operator") or "Equal"
    if key:
        errs += f.check_format(f"{path}.key", key, names.check_qualified_name)
    elif op != "Exists":
        errs.append(errors.invalid(
            f"{path}.operator", op,
            'operator must be Exists when `key` is empty, which means "match all values and all keys"'))
    errs += f.one_of(f"{path}.operator", op, ("Equal", "Exists"))
    if op == "Exists" and tol.get("value"):
        errs.append(errors.invalid(f"{path}.operator", tol.get("value"),
                                   "value must be empty when `operator` is 'Exists'"))
    errs += f.one_of(f"{path}.effect", tol.get("effect") or None,
                     ("NoSchedule", "PreferNoSchedule", "NoExecute"))
    return errs


# -- update ----------------------------------------------------------------------------------

_POD_UPDATE_RULE = (
    "pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` "
    "(only additions to existing tolerations) or `spec.nodeName` (only set once)"
)


def validate_pod_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs: Errs = []
    old_deadline, new_deadline = old.get("activeDeadlineSeconds"), new.get("activeDeadlineSeconds")
    if f.is_int(old_deadline):
        if new_deadline is None:
            errs.append(errors.invalid("spec.activeDeadlineSeconds", None,
                                       "must not update from a positive integer to nil value"))
        elif f.is_int(new_deadline) and new_deadline > old_deadline:
            errs.append(errors.invalid("spec.activeDeadlineSeconds", new_deadline,
                                       "must be less than or equal to previous value"))
    old_tolerations = as_list(old.get("tolerations"))
    new_tolerations = as_list(new.get("tolerations"))
    for tol in old_tolerations:
        if tol not in new_tolerations:
            errs.append(errors.forbidden("spec.tolerations",
                                         "existing toleration can not be modified or removed"))
            break
    diff = f.first_difference(_mutable_masked(new, old), _mutable_masked(old, old), "spec")
    if diff:
        errs.append(errors.forbidden("spec", f"{_POD_UPDATE_RULE}; changed: {diff}"))
    return errs


def _mutable_masked(spec: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    masked = f.clone(spec)
    for key in ("activeDeadlineSeconds", "tolerations"):
        masked.pop(key, None)
    if not old.get("nodeName"):
        masked.pop("nodeName", None)
    for key in ("containers", "initContainers"):
        for c in as_list(masked.get(key)):
            if isinstance(c, dict):
                c.pop("image", None)
                # imagePullPolicy follows the image when it was defaulted from it.
                c.pop("imagePullPolicy", None)
    return masked
