"""PATCH semantics: RFC 7386, RFC 6902 and Kubernetes strategic merge patch as kubectl
sends it."""

from __future__ import annotations

import copy
import http.server
import json
import os
import shutil
import subprocess
import threading

import pytest

from shoal.api import errors, patch


# ----------------------------------------------------------------- RFC 7386 merge patch

RFC7386_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize("target,body,expected", RFC7386_EXAMPLES)
def test_merge_patch_rfc7386_examples(target, body, expected):
    before = copy.deepcopy(target)
    assert patch.merge_patch(target, body) == expected
    assert target == before


@pytest.mark.parametrize("body", [["c"], None, "bar", 3])
def test_merge_patch_that_is_not_an_object_is_a_bad_request(body):
    with pytest.raises(errors.BadRequest, match="merge patch must be a JSON object"):
        patch.merge_patch({"a": "foo"}, body)


def test_merge_patch_scales_and_labels_like_kubectl():
    deploy = {"metadata": {"name": "web", "labels": {"app": "web", "tier": "x"}},
              "spec": {"replicas": 1}}
    # `kubectl scale` and `kubectl label tier- env=prod` send merge patches.
    scaled = patch.merge_patch(deploy, {"spec": {"replicas": 3}})
    labelled = patch.merge_patch(scaled, {"metadata": {"labels": {"env": "prod", "tier": None}}})
    assert labelled == {"metadata": {"name": "web", "labels": {"app": "web", "env": "prod"}},
                        "spec": {"replicas": 3}}


# ----------------------------------------------------------------- RFC 6902 JSON patch


@pytest.mark.parametrize("target,ops,expected", [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
     {"baz": "qux", "foo": "bar"}),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}],
     {"foo": ["bar", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ({"foo": ["all", "grass", "cows", "eat"]},
     [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ({"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
])
def test_json_patch_rfc6902_examples(target, ops, expected):
    before = copy.deepcopy(target)
    assert patch.json_patch(target, ops) == expected
    assert target == before


def test_json_patch_failing_test_is_invalid_422():
    obj = {"kind": "Pod", "metadata": {"name": "p"}, "baz": "qux"}
    with pytest.raises(errors.Invalid) as caught:
        patch.json_patch(obj, [{"op": "test", "path": "/baz", "value": "bar"}])
    assert caught.value.code == 422
    assert caught.value.message.startswith('Pod "p" is invalid: patch: Invalid value: test')


@pytest.mark.parametrize("ops", [
    [{"op": "add", "path": "/baz/bat", "value": "qux"}],   # RFC 6902 A.12: no parent
    [{"op": "remove", "path": "/nothing"}],
    [{"op": "replace", "path": "/spec/none", "value": 1}],
    [{"op": "test", "path": "/~01", "value": "10"}],        # A.15: "10" is not 10
])
def test_json_patch_that_cannot_apply_is_invalid(ops):
    with pytest.raises(errors.Invalid):
        patch.json_patch({"foo": "bar", "~1": 10}, ops)


@pytest.mark.parametrize("ops,words", [
    ({"op": "add"}, "JSON array of operations"),
    (["add"], "operation 0 must be a JSON object"),
    ([{"path": "/a"}], "no 'op' member"),
    ([{"op": "add", "value": 1}], "'path' must be a JSON pointer"),
    ([{"op": "add", "path": "a", "value": 1}], "'path' must be a JSON pointer"),
    ([{"op": "move", "path": "/a"}], "'from' must be a JSON pointer"),
    ([{"op": "frobnicate", "path": "/a"}], "invalid json patch"),
    ([{"op": "add", "path": "/a"}], "invalid json patch"),
])
def test_malformed_json_patch_is_a_bad_request(ops, words):
    with pytest.raises(errors.BadRequest, match=words):
        patch.json_patch({"a": 1}, ops)


# ----------------------------------------------------------------- strategic merge patch


def pod(*containers, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": list(containers), **spec}}


def names(items):
    return [i["name"] for i in items]


def test_containers_merge_by_name():
    live = pod({"name": "web", "image": "nginx:1.25", "args": ["-x"]},
               {"name": "proxy", "image": "envoy:1"})
    before = copy.deepcopy(live)
    out = patch.strategic_merge_patch(
        live, {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}, "Pod")
    assert out["spec"]["containers"] == [
        {"name": "web", "image": "nginx:1.27", "args": ["-x"]},
        {"name": "proxy", "image": "envoy:1"},
    ]
    assert live == before


def test_new_container_is_added_and_kept():
    live = pod({"name": "web", "image": "nginx"})
    out = patch.strategic_merge_patch(
        live, {"spec": {"containers": [{"name": "log", "image": "busybox"}]}}, "Pod")
    assert sorted(names(out["spec"]["containers"])) == ["log", "web"]


def test_env_merges_by_name_and_ports_by_container_port():
    live = pod({"name": "web", "image": "nginx",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]})
    out = patch.strategic_merge_patch(live, {"spec": {"containers": [{
        "name": "web",
        "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
    }]}}, "Pod")
    web = out["spec"]["containers"][0]
    assert {e["name"]: e["value"] for e in web["env"]} == {"A": "1", "B": "20", "C": "3"}
    assert web["ports"] == [{"containerPort": 80, "name": "http", "protocol": "TCP"},
                            {"containerPort": 443}]


def test_service_ports_merge_by_port():
    svc = {"kind": "Service", "metadata": {"name": "s"},
           "spec": {"selector": {"app": "a", "tier": "b"},
                    "ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    out = patch.strategic_merge_patch(svc, {"spec": {
        "ports": [{"port": 80, "targetPort": 9090}], "selector": {"tier": None}}}, "Service")
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]
    assert out["spec"]["selector"] == {"app": "a"}


def test_patch_delete_directive_removes_a_container():
    live = pod({"name": "web", "image": "nginx"}, {"name": "proxy", "image": "envoy"})
    out = patch.strategic_merge_patch(
        live, {"spec": {"containers": [{"name": "proxy", "$patch": "delete"}]}}, "Pod")
    assert names(out["spec"]["containers"]) == ["web"]


def test_patch_replace_directive_on_list_and_map():
    live = pod({"name": "web", "image": "nginx"}, {"name": "proxy", "image": "envoy"},
               nodeSelector={"a": "1", "b": "2"})
    out = patch.strategic_merge_patch(live, {"spec": {
        "containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}],
        "nodeSelector": {"c": "3", "$patch": "replace"},
    }}, "Pod")
    assert out["spec"]["containers"] == [{"name": "only", "image": "x"}]
    assert out["spec"]["nodeSelector"] == {"c": "3"}


def test_patch_delete_directive_on_a_map_empties_it():
    live = pod({"name": "web"}, nodeSelector={"a": "1"})
    out = patch.strategic_merge_patch(live, {"spec": {"nodeSelector": {"$patch": "delete"}}}, "Pod")
    assert out["spec"]["nodeSelector"] == {}


def test_null_deletes_a_key_and_lists_without_strategy_are_replaced():
    live = pod({"name": "web", "image": "nginx", "command": ["a", "b"]},
               tolerations=[{"key": "x", "operator": "Exists"}], hostname="h")
    out = patch.strategic_merge_patch(live, {"spec": {
        "hostname": None,
        "tolerations": [{"key": "y", "operator": "Exists"}],
        "containers": [{"name": "web", "command": ["c"]}],
    }}, "Pod")
    assert "hostname" not in out["spec"]
    assert out["spec"]["tolerations"] == [{"key": "y", "operator": "Exists"}]
    assert out["spec"]["containers"][0]["command"] == ["c"]


def test_set_element_order_reorders_containers():
    live = pod({"name": "a", "image": "1"}, {"name": "b", "image": "2"}, {"name": "c", "image": "3"})
    out = patch.strategic_merge_patch(live, {"spec": {
        "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
        "containers": [{"name": "a", "image": "10"}],
    }}, "Pod")
    assert [(c["name"], c["image"]) for c in out["spec"]["containers"]] == [
        ("c", "3"), ("a", "10"), ("b", "2")]


def test_set_element_order_keeps_server_only_items():
    live = pod({"name": "a"}, {"name": "injected"}, {"name": "b"})
    out = patch.strategic_merge_patch(live, {"spec": {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}, "Pod")
    assert set(names(out["spec"]["containers"])) == {"a", "b", "injected"}
    assert names(out["spec"]["containers"]).index("b") < names(out["spec"]["containers"]).index("a")


def test_set_element_order_that_contradicts_the_patch_is_a_bad_request():
    live = pod({"name": "a"}, {"name": "b"})
    with pytest.raises(errors.BadRequest, match="doesn't match"):
        patch.strategic_merge_patch(live, {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "x"}, {"name": "a", "image": "y"}]}}, "Pod")


def test_retain_keys_clears_fields_not_listed():
    deploy = {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"strategy": {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    out = patch.strategic_merge_patch(deploy, {"spec": {"strategy": {
        "$retainKeys": ["type"], "type": "Recreate"}}}, "Deployment")
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_on_volume_items_switches_the_volume_source():
    live = pod({"name": "web"}, volumes=[{"name": "data", "emptyDir": {}},
                                         {"name": "conf", "configMap": {"name": "c"}}])
    out = patch.strategic_merge_patch(live, {"spec": {"volumes": [{
        "name": "data", "$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/srv"}}]}},
        "Pod")
    assert out["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/srv"}},
                                      {"name": "conf", "configMap": {"name": "c"}}]


def test_retain_keys_that_omit_a_patched_field_is_a_bad_request():
    deploy = {"kind": "Deployment", "spec": {"strategy": {"type": "Recreate"}}}
    with pytest.raises(errors.BadRequest, match="retainKeys"):
        patch.strategic_merge_patch(deploy, {"spec": {"strategy": {
            "$retainKeys": ["type"], "rollingUpdate": {}}}}, "Deployment")


def test_finalizers_union_and_delete_from_primitive_list():
    live = {"kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["a", "b"]}}
    added = patch.strategic_merge_patch(live, {"metadata": {"finalizers": ["b", "c"]}}, "ConfigMap")
    assert sorted(added["metadata"]["finalizers"]) == ["a", "b", "c"]
    removed = patch.strategic_merge_patch(
        added, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "c"]}}, "ConfigMap")
    assert removed["metadata"]["finalizers"] == ["b"]


def test_owner_references_merge_by_uid_for_any_kind():
    live = {"kind": "Widget", "metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]},
            "spec": {"items": [1, 2]}}
    out = patch.strategic_merge_patch(live, {
        "metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]},
        "spec": {"items": [3]}}, "Widget")
    assert sorted(r["uid"] for r in out["metadata"]["ownerReferences"]) == ["1", "2"]
    assert out["spec"]["items"] == [3]  # unknown kind: lists are replaced


def test_status_conditions_merge_by_type():
    live = {"kind": "Pod", "status": {"conditions": [
        {"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}}
    out = patch.strategic_merge_patch(
        live, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, "Pod")
    assert {c["type"]: c["status"] for c in out["status"]["conditions"]} == {
        "Ready": "True", "PodScheduled": "True"}


def test_kubectl_apply_patch_of_a_changed_deployment():
    """The body kubectl 1.3x sends for `kubectl apply -f web.yaml` after the image in
    web.yaml changed from nginx:1.25 to nginx:1.27 and the DEBUG env var was removed."""
    applied_before = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                     {"name": "web", "image": "nginx:1.25",
                      "env": [{"name": "DEBUG", "value": "1"}, {"name": "MODE", "value": "x"}],
                      "ports": [{"containerPort": 80}]}]}}}}
    live = copy.deepcopy(applied_before)
    live["metadata"].update({"uid": "u1", "resourceVersion": "7", "generation": 1, "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied_before)}})
    spec = live["spec"]["template"]["spec"]
    spec["containers"][0].update({"imagePullPolicy": "IfNotPresent",
                                  "terminationMessagePath": "/dev/termination-log"})
    spec["containers"].append({"name": "istio-proxy", "image": "envoy:1.40"})  # injected
    spec["restartPolicy"] = "Always"
    live["status"] = {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]}

    applied_now = copy.deepcopy(applied_before)
    applied_now["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
    del applied_now["spec"]["template"]["spec"]["containers"][0]["env"][0]
    body = json.dumps({
        "metadata": {"annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied_now) + "\n"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "MODE"}],
                "env": [{"$patch": "delete", "name": "DEBUG"}],
                "image": "nginx:1.27", "name": "web"}]}}}})

    out = patch.apply_patch(live, body, "application/strategic-merge-patch+json", "Deployment")

    containers = out["spec"]["template"]["spec"]["containers"]
    assert names(containers) == ["web", "istio-proxy"]
    assert containers[0] == {
        "name": "web", "image": "nginx:1.27", "env": [{"name": "MODE", "value": "x"}],
        "ports": [{"containerPort": 80}], "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log"}
    assert containers[1] == {"name": "istio-proxy", "image": "envoy:1.40"}
    annotation = out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert json.loads(annotation) == applied_now
    assert out["metadata"]["uid"] == "u1" and out["spec"]["replicas"] == 2
    assert out["status"] == live["status"]
    assert "$setElementOrder/containers" not in json.dumps(out)


def test_kubectl_set_image_and_rollout_restart():
    deploy = {"kind": "Deployment", "spec": {"template": {"metadata": {"labels": {"app": "w"}},
              "spec": {"containers": [{"name": "web", "image": "a"}, {"name": "b", "image": "b"}]}}}}
    out = patch.apply_patch(deploy, {"spec": {"template": {"spec": {"containers": [
        {"image": "c", "name": "web"}]}}}}, "application/strategic-merge-patch+json", "Deployment")
    out = patch.apply_patch(out, {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}},
        "application/strategic-merge-patch+json", "Deployment")
    assert [c["image"] for c in out["spec"]["template"]["spec"]["containers"]] == ["c", "b"]
    assert out["spec"]["template"]["metadata"] == {
        "labels": {"app": "w"},
        "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}


def test_directives_inside_new_values_are_not_stored():
    live = {"kind": "Pod", "spec": {}}
    out = patch.strategic_merge_patch(live, {"spec": {"containers": [
        {"name": "a", "env": [{"name": "X", "value": None}]},
        {"name": "gone", "$patch": "delete"}], "nodeSelector": {"a": None, "b": "1"}}}, "Pod")
    assert out["spec"] == {"containers": [{"name": "a", "env": [{"name": "X"}]}],
                           "nodeSelector": {"b": "1"}}


@pytest.mark.parametrize("body,words", [
    ([{"a": 1}], "must be a JSON object, got an array"),
    ({"spec": {"$patch": "frob"}}, "unknown patch type: 'frob' at spec"),
    ({"spec": {"containers": [{"image": "x"}]}}, "does not contain declared merge key: name"),
    ({"spec": {"containers": [{"$patch": "delete"}]}}, "declared merge key: name"),
    ({"spec": {"containers": [{"$patch": "merge"}]}}, "merging lists cannot yet be specified"),
    ({"spec": {"$setElementOrder/containers": "web"}}, "setElementOrder"),
    ({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}, "must be a list"),
    ({"spec": {"containers": ["web"]}}, "list element types are not identical"),
])
def test_bad_strategic_merge_patches_are_bad_requests(body, words):
    live = pod({"name": "web", "image": "nginx"})
    live["metadata"]["finalizers"] = ["a"]
    with pytest.raises(errors.BadRequest, match=words):
        patch.strategic_merge_patch(live, body, "Pod")


# ----------------------------------------------------------------- content types


def test_apply_patch_dispatches_on_content_type_with_parameters():
    obj = {"kind": "ConfigMap", "data": {"a": "1"}}
    assert patch.apply_patch(obj, b'{"data":{"b":"2"}}',
                             "application/merge-patch+json; charset=utf-8",
                             "ConfigMap")["data"] == {"a": "1", "b": "2"}
    assert patch.apply_patch(obj, '[{"op":"remove","path":"/data/a"}]',
                             "application/json-patch+json", "ConfigMap")["data"] == {}


def test_server_side_apply_is_a_strategic_merge_of_the_applied_yaml():
    live = pod({"name": "web", "image": "nginx:1.25"})
    body = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n" \
           "  - name: web\n    image: nginx:1.27\n"
    out = patch.apply_patch(live, body, "application/apply-patch+yaml", "Pod")
    assert out["spec"]["containers"] == [{"name": "web", "image": "nginx:1.27"}]


def test_unknown_content_type_is_unsupported_media_type():
    with pytest.raises(errors.UnsupportedMediaType, match="application/strategic-merge-patch"):
        patch.apply_patch({}, {}, "application/xml", "Pod")


def test_undecodable_body_is_a_bad_request():
    with pytest.raises(errors.BadRequest, match="not valid JSON"):
        patch.apply_patch({}, b"{nope", "application/merge-patch+json", "Pod")


# ------------------------------------------------ differential: the real kubectl (Go code)

KUBECTL = shutil.which("kubectl")

LIVE_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p", "finalizers": ["a", "b"], "labels": {"app": "x", "t": "y"},
                 "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o1", "uid": "u1"}]},
    "spec": {"containers": [{"name": "a", "image": "1",
                             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                             "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
                             "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                             "command": ["x", "y"]},
                            {"name": "b", "image": "2"}],
             "volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "configMap": {"name": "c"}}],
             "tolerations": [{"key": "k", "operator": "Exists"}],
             "nodeSelector": {"a": "1", "b": "2"},
             "initContainers": [{"name": "i1", "image": "i"}]},
    "status": {"conditions": [{"type": "Ready", "status": "False"},
                              {"type": "PodScheduled", "status": "True"}]}}
LIVE_DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "w"}},
             "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
             "template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [
                 {"name": "web", "image": "n:1", "env": [{"name": "X", "value": "1"}]},
                 {"name": "side", "image": "e"}]}}}}
LIVE_SERVICE = {
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
    "spec": {"selector": {"app": "a"}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"},
                                                 {"port": 443, "protocol": "TCP"}]}}

DIFFERENTIAL_CASES = [
    (LIVE_POD, {"spec": {"containers": [{"name": "c", "image": "3"}, {"name": "a", "image": "7"}]}}),
    (LIVE_POD, {"spec": {"containers": [{"name": "z", "image": "z"}, {"$patch": "replace"}]}}),
    (LIVE_POD, {"spec": {"nodeSelector": {"c": "3", "$patch": "replace"},
                         "tolerations": [{"key": "q", "operator": "Exists"}]}}),
    (LIVE_POD, {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}],
                         "containers": [{"name": "c", "image": "c"}]}}),
    (LIVE_POD, {"spec": {"containers": [{"name": "a", "env": [
        {"name": "C", "value": "3"}, {"name": "A", "$patch": "delete"}],
        "ports": [{"containerPort": 8080}]}]}}),
    (LIVE_POD, {"spec": {"containers": [{"name": "a", "$setElementOrder/env": [
        {"name": "B"}, {"name": "A"}]}]}}),
    (LIVE_POD, {"spec": {"containers": [{"name": "a", "command": ["z"], "volumeMounts": [
        {"mountPath": "/w", "name": "w"}]}]}}),
    (LIVE_POD, {"spec": {"volumes": [{"name": "v", "$retainKeys": ["hostPath", "name"],
                                      "hostPath": {"path": "/srv"}}]}}),
    (LIVE_POD, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["z"]}}),
    (LIVE_POD, {"metadata": {"$setElementOrder/finalizers": ["b", "z", "a"], "finalizers": ["z"]}}),
    (LIVE_POD, {"metadata": {"ownerReferences": [
        {"apiVersion": "v1", "kind": "Y", "name": "o2", "uid": "u2"}], "labels": {"t": None, "n": "1"}}}),
    (LIVE_POD, {"status": {"conditions": [{"type": "Ready", "status": "True"},
                                          {"type": "Initialized", "status": "True"}]}}),
    (LIVE_POD, {"spec": {"containers": [{"name": "a", "ports": [
        {"containerPort": 443, "protocol": "TCP"}, {"containerPort": 80, "$patch": "delete"}]}]}}),
    (LIVE_DEPLOYMENT, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    (LIVE_DEPLOYMENT, {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}],
        "containers": [{"name": "side", "$patch": "delete"}, {"name": "web", "image": "n:2"}]}}}}),
    (LIVE_SERVICE, {"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 8080}],
                             "selector": {"app": None, "b": "c"}}}),
    (LIVE_SERVICE, {"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}]}}),
]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize("live,body", DIFFERENTIAL_CASES)
def test_strategic_merge_matches_kubectl(live, body, tmp_path):
    """`kubectl patch --local` runs Kubernetes' own strategicpatch code: same result."""
    source = tmp_path / "live.json"
    source.write_text(json.dumps(live))
    done = subprocess.run(
        [KUBECTL, "patch", "-f", str(source), "--local", "--type", "strategic",
         "-p", json.dumps(body), "-o", "json"],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "none")})
    assert done.returncode == 0, done.stderr
    assert patch.strategic_merge_patch(live, body, live["kind"]) == json.loads(done.stdout)


@pytest.mark.parametrize("content_type,body", [
    ("application/merge-patch+json", {"spec": {"containers": [{"name": "x"}], "n": {"a": 1}}}),
    ("application/json-patch+json", [{"op": "add", "path": "/spec/n", "value": {"a": 1}}]),
    ("application/strategic-merge-patch+json",
     {"spec": {"$setElementOrder/containers": [{"name": "web"}],
               "containers": [{"name": "web", "env": [{"name": "A", "value": "1"}]}],
               "n": {"a": 1}}}),
])
def test_inputs_are_never_mutated_nor_shared_with_the_result(content_type, body):
    live = pod({"name": "web", "image": "nginx", "env": [{"name": "B", "value": "2"}]})
    live_before, body_before = copy.deepcopy(live), copy.deepcopy(body)
    out = patch.apply_patch(live, body, content_type, "Pod")
    assert live == live_before and body == body_before
    out["spec"]["n"]["a"] = 2
    out["spec"]["containers"][0]["name"] = "changed"
    assert live == live_before and body == body_before


# ------------------------------------- real kubectl commands send their PATCH to apply_patch


class _PatchServer(http.server.BaseHTTPRequestHandler):
    """Just enough of an API server for kubectl's patching commands: discovery, GET of
    the stored objects, and PATCH through `patch.apply_patch` (bodies are recorded)."""

    store: dict[str, dict] = {}
    patches: list[tuple[str, str]] = []
    resources = {"deployments": ("apps/v1", "Deployment"), "configmaps": ("v1", "ConfigMap")}

    def log_message(self, *args):
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            version = {"groupVersion": "apps/v1", "version": "v1"}
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": "apps", "versions": [version], "preferredVersion": version}]})
        for group_version, prefix in (("v1", "/api/v1"), ("apps/v1", "/apis/apps/v1")):
            if path == prefix:
                return self._send(200, {
                    "kind": "APIResourceList", "groupVersion": group_version, "resources": [
                        {"name": name, "singularName": name[:-1], "namespaced": True,
                         "kind": kind, "verbs": ["get", "list", "patch"]}
                        for name, (gv, kind) in self.resources.items() if gv == group_version]})
        if path in self.store:
            return self._send(200, self.store[path])
        return self._send(404, errors.NotFound("not found").to_status())

    def do_PATCH(self):
        path = self.path.split("?")[0]
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        content_type = self.headers["Content-Type"]
        self.patches.append((content_type, body))
        try:
            current = self.store[path]
            self.store[path] = patch.apply_patch(current, body, content_type, current["kind"])
        except errors.StatusError as exc:
            return self._send(exc.code, exc.to_status())
        return self._send(200, self.store[path])


DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/default/deployments/web"
CONFIGMAP_PATH = "/api/v1/namespaces/default/configmaps/settings"


@pytest.fixture
def api(tmp_path):
    _PatchServer.store = {}
    _PatchServer.patches = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PatchServer)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{server.server_port}'}}}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]\n"
        "users: [{name: u, user: {}}]\n")

    def kubectl(*args: str) -> str:
        done = subprocess.run(
            [KUBECTL, "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "cache"), *args],
            capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    yield kubectl
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_apply_set_label_annotate_restart_through_apply_patch(api, tmp_path):
    first = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                     {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
                      "env": [{"name": "DEBUG", "value": "1"}, {"name": "MODE", "value": "x"}]},
                     {"name": "log", "image": "busybox"}]}}}}
    live = copy.deepcopy(first)
    live["metadata"].update({"uid": "u1", "resourceVersion": "5", "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(first) + "\n"}})
    live["spec"]["template"]["spec"]["containers"].append({"name": "istio-proxy", "image": "envoy"})
    _PatchServer.store[DEPLOYMENT_PATH] = live

    second = copy.deepcopy(first)
    containers = second["spec"]["template"]["spec"]["containers"]
    containers[0]["image"] = "nginx:1.27"
    del containers[0]["env"][0]
    del containers[1]
    containers.insert(0, {"name": "warmup", "image": "alpine"})
    second["spec"]["strategy"] = {"type": "Recreate"}
    second["metadata"]["labels"]["tier"] = "fe"
    manifest = tmp_path / "web.json"
    manifest.write_text(json.dumps(second))

    api("apply", "-f", str(manifest), "--validate=false")
    api("set", "image", "deployment/web", "web=nginx:1.28")
    api("set", "env", "deployment/web", "-c", "web", "NEW=1", "MODE-")
    api("label", "deployment/web", "tier-", "env=prod")
    api("annotate", "deployment/web", "owner=team-a")
    api("rollout", "restart", "deployment/web")

    kinds = [content_type for content_type, _ in _PatchServer.patches]
    assert kinds == ["application/strategic-merge-patch+json"] * 3 + [
        "application/merge-patch+json"] * 2 + ["application/strategic-merge-patch+json"]
    assert "$setElementOrder/containers" in _PatchServer.patches[0][1]
    assert "$retainKeys" in _PatchServer.patches[0][1]

    result = _PatchServer.store[DEPLOYMENT_PATH]
    assert result["spec"]["strategy"] == {"type": "Recreate"}
    assert result["metadata"]["labels"] == {"app": "web", "env": "prod"}
    assert result["metadata"]["annotations"]["owner"] == "team-a"
    last_applied = json.loads(
        result["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last_applied == {**second, "metadata": {**second["metadata"], "annotations": {}}}
    template = result["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]
    assert template["spec"]["containers"] == [
        {"name": "warmup", "image": "alpine"},
        {"name": "web", "image": "nginx:1.28", "ports": [{"containerPort": 80}],
         "env": [{"name": "NEW", "value": "1"}]},
        {"name": "istio-proxy", "image": "envoy"},  # not in the manifest: kept
    ]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_server_side_apply_and_patch_errors(api, tmp_path):
    _PatchServer.store[CONFIGMAP_PATH] = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default"}, "data": {"a": "1"}}
    manifest = tmp_path / "settings.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
                        "data:\n  b: '2'\n")
    api("apply", "--server-side", "--validate=false", "-f", str(manifest))
    assert _PatchServer.patches[-1][0] == "application/apply-patch+yaml"
    assert _PatchServer.store[CONFIGMAP_PATH]["data"] == {"a": "1", "b": "2"}

    api("patch", "configmap/settings", "--type", "json",
        "-p", '[{"op": "replace", "path": "/data/a", "value": "10"}]')
    assert _PatchServer.store[CONFIGMAP_PATH]["data"] == {"a": "10", "b": "2"}
    with pytest.raises(AssertionError, match="is invalid: patch: Invalid value: test"):
        api("patch", "configmap/settings", "--type", "json",
            "-p", '[{"op": "test", "path": "/data/a", "value": "1"}]')
