"""The kinds registry: names, lookups as kubectl and REST paths use them, and the
registration seam later kinds (Istio's) go through."""

from __future__ import annotations

import pytest

from shoal.api import defaults, errors, kinds, schema, validation

BUILTIN = {
    ("", "Namespace"), ("", "Pod"), ("", "Service"), ("", "Endpoints"), ("", "ConfigMap"),
    ("", "Secret"), ("", "ServiceAccount"), ("", "Event"), ("", "PersistentVolumeClaim"),
    ("apps", "Deployment"), ("apps", "ReplicaSet"),
}


def test_every_builtin_kind_is_served():
    served = {(rt.group, rt.kind) for rt in kinds.all_types()}
    assert BUILTIN <= served


def test_resource_type_properties():
    deploy = kinds.by_kind("apps/v1", "Deployment")
    assert deploy.api_version == "apps/v1"
    assert deploy.resource == "deployments.apps"
    assert deploy.list_kind == "DeploymentList"
    assert deploy.namespaced and "scale" in deploy.subresources
    assert set(deploy.verbs) == {"create", "delete", "deletecollection", "get", "list",
                                 "patch", "update", "watch"}
    pod = kinds.by_kind("v1", "Pod")
    assert (pod.api_version, pod.resource, pod.list_kind) == ("v1", "pods", "PodList")
    assert not kinds.by_kind("v1", "Namespace").namespaced


@pytest.mark.parametrize("name", ["pods", "pod", "po", "Pod", "PODS", "pods.v1"])
def test_by_resource_finds_pods_by_every_cli_name(name):
    assert kinds.by_resource(name).kind == "Pod"


@pytest.mark.parametrize("name", ["deployments", "deployment", "deploy", "Deployment",
                                  "deployments.apps", "deployment.apps", "deploy.apps",
                                  "deployments.v1.apps"])
def test_by_resource_finds_deployments_by_every_cli_name(name):
    assert kinds.by_resource(name).kind == "Deployment"


@pytest.mark.parametrize("name,kind", [
    ("svc", "Service"), ("ep", "Endpoints"), ("cm", "ConfigMap"), ("ns", "Namespace"),
    ("pvc", "PersistentVolumeClaim"), ("sa", "ServiceAccount"), ("ev", "Event"),
    ("rs", "ReplicaSet"), ("secrets", "Secret"),
])
def test_short_names(name, kind):
    assert kinds.by_resource(name).kind == kind


def test_unknown_resource_is_not_found_with_kubectl_wording():
    with pytest.raises(errors.NotFound) as exc:
        kinds.by_resource("podz")
    assert str(exc.value) == 'the server doesn\'t have a resource type "podz"'


def test_unknown_kind_is_bad_request_naming_version_and_kind():
    with pytest.raises(errors.BadRequest) as exc:
        kinds.by_kind("apps/v1", "Deploymnt")
    assert 'no kind "Deploymnt" is registered for version "apps/v1"' in str(exc.value)


def test_unknown_kind_hints_at_the_right_version_and_spelling():
    with pytest.raises(errors.BadRequest) as exc:
        kinds.by_kind("v1", "Deployment")
    assert '"apps/v1"' in str(exc.value)
    with pytest.raises(errors.BadRequest) as exc:
        kinds.by_kind("apps/v1", "deployment")
    assert 'did you mean "Deployment"' in str(exc.value)


def test_by_path_is_the_rest_lookup():
    assert kinds.by_path("", "v1", "pods").kind == "Pod"
    assert kinds.by_path("apps", "v1", "replicasets").kind == "ReplicaSet"
    assert kinds.by_path("apps", "v1", "pods") is None
    assert kinds.by_path("", "v2", "pods") is None


@pytest.fixture
def restore_registry():
    saved = dict(kinds._registry)
    yield
    kinds._registry.clear()
    kinds._registry.update(saved)
    kinds._reindex()


VS = kinds.ResourceType("networking.example.io", "v1", "VirtualRoute", "virtualroutes",
                        "virtualroute", True, ("vr",), categories=())


def _vs(**spec):
    return {"apiVersion": "networking.example.io/v1", "kind": "VirtualRoute",
            "metadata": {"name": "reviews"}, "spec": spec}


def _validate_vs(obj, old):
    hosts = obj.get("spec", {}).get("hosts") or []
    return [] if hosts else [errors.required("spec.hosts")]


def _default_vs(obj):
    obj.setdefault("spec", {}).setdefault("timeout", "15s")


def test_registered_kind_behaves_like_a_builtin(restore_registry):
    kinds.register(
        VS,
        schema={"spec": {"hosts": "List[str]", "timeout": "str",
                         "http": [{"name": "str", "weight": "int"}]}},
        defaulter=_default_vs, validator=_validate_vs,
    )
    assert kinds.by_kind("networking.example.io/v1", "VirtualRoute") is VS
    assert kinds.by_resource("vr") is VS
    assert kinds.by_resource("virtualroutes.networking.example.io") is VS
    assert kinds.by_path("networking.example.io", "v1", "virtualroutes") is VS
    assert VS in kinds.all_types()

    obj = defaults.apply_defaults(_vs(hosts=["reviews"]))
    assert obj["spec"]["timeout"] == "15s"
    assert obj["metadata"]["namespace"] == "default"
    validation.validate(obj)

    with pytest.raises(errors.Invalid) as exc:
        validation.validate(defaults.apply_defaults(_vs(http=[{"nmae": "a", "weight": "x"}])))
    text = str(exc.value)
    assert 'VirtualRoute "reviews" is invalid' in text
    assert "spec.http[0].nmae: Unknown field" in text
    assert "spec.http[0].weight: Invalid value: \"x\": expected integer" in text
    assert "spec.hosts: Required value" in text
    assert exc.value.details["group"] == "networking.example.io"


def test_registered_kind_with_a_crd_openapi_schema(restore_registry):
    crd_schema = {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "mtls": {"type": "object", "properties": {
                "mode": {"type": "string", "enum": ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]}}},
            "selector": {"type": "object", "properties": {
                "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "portLevelMtls": {"type": "object", "additionalProperties": {"type": "object",
                              "x-kubernetes-preserve-unknown-fields": True}},
        }},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    }}}
    rt = kinds.ResourceType("security.example.io", "v1", "PeerAuth", "peerauths", "peerauth", True)
    kinds.register(rt, schema=crd_schema)
    good = {"apiVersion": "security.example.io/v1", "kind": "PeerAuth",
            "metadata": {"name": "default", "namespace": "istio-system"},
            "spec": {"mtls": {"mode": "STRICT"}, "selector": {"matchLabels": {"app": "x"}},
                     "portLevelMtls": {"8080": {"mode": "DISABLE"}}},
            "status": {"anything": [1, 2]}}
    validation.validate(good)
    bad = {**good, "spec": {"mtls": {"mode": "STRICTER"}, "selektor": {}}}
    with pytest.raises(errors.Invalid) as exc:
        validation.validate(bad)
    text = str(exc.value)
    assert "spec.mtls.mode: Unsupported value: \"STRICTER\"" in text
    assert "spec.selektor: Unknown field" in text


def test_registered_kind_without_schema_checks_metadata_only(restore_registry):
    rt = kinds.ResourceType("example.io", "v1alpha1", "Widget", "widgets", "widget", False)
    kinds.register(rt)
    obj = defaults.apply_defaults({"apiVersion": "example.io/v1alpha1", "kind": "Widget",
                                   "metadata": {"name": "w", "namespace": "x"}, "spec": {"a": 1}})
    assert "namespace" not in obj["metadata"]  # cluster-scoped: cleared as Kubernetes does
    validation.validate(obj)
    with pytest.raises(errors.Invalid) as exc:
        validation.validate({**obj, "metadata": {"name": "Bad_Name"}})
    assert "metadata.name: Invalid value: \"Bad_Name\"" in str(exc.value)


def test_register_refuses_a_plural_taken_by_another_kind(restore_registry):
    with pytest.raises(ValueError):
        kinds.register(kinds.ResourceType("", "v1", "Pad", "pods", "pad", True))


def test_reregistering_a_kind_replaces_it(restore_registry):
    kinds.register(VS, validator=_validate_vs)
    kinds.register(VS, validator=None)
    validation.validate(defaults.apply_defaults(_vs()))
    assert [rt for rt in kinds.all_types() if rt.kind == "VirtualRoute"] == [VS]


def test_schema_from_fields_rejects_nonsense():
    with pytest.raises(ValueError):
        schema.from_fields({"spec": 42})
