"""kubectl's three-way patch for client-side apply (shoal.api.applypatch), applied with
the server's strategic merge (shoal.api.patch) as the API server would."""

from __future__ import annotations

from shoal.api import patch as patches
from shoal.api.applypatch import three_way_patch


def deployment(*containers, **meta):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", **meta},
            "spec": {"template": {"spec": {"containers": [dict(c) for c in containers]}}}}


MAIN = {"name": "main", "image": "busybox", "env": [{"name": "A", "value": "1"}]}
HELPER = {"name": "helper", "image": "busybox"}


def apply(last, manifest, live, kind="Deployment", strategic=True):
    p = three_way_patch(last, manifest, live, kind, strategic=strategic)
    merged = patches.strategic_merge_patch(live, p, kind) if strategic else patches.merge_patch(live, p)
    return p, merged


def names(obj):
    return [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]]


def test_a_dropped_container_is_deleted_by_its_merge_key_and_others_keep_their_fields():
    live = deployment({**MAIN, "terminationMessagePath": "/dev/termination-log"}, HELPER)
    p, merged = apply(deployment(MAIN, HELPER), deployment(MAIN), live)
    assert p["spec"]["template"]["spec"]["containers"] == [{"name": "helper", "$patch": "delete"}]
    assert p["spec"]["template"]["spec"]["$setElementOrder/containers"] == [{"name": "main"}]
    assert names(merged) == ["main"]
    # a default the server set (not applied by anyone) stays
    assert merged["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] == "/dev/termination-log"


def test_a_container_comes_back_in_the_manifests_order_and_a_changed_env_merges_by_name():
    changed = {**MAIN, "env": [{"name": "A", "value": "2"}]}
    _, merged = apply(deployment(MAIN), deployment(HELPER, changed), deployment(MAIN))
    assert names(merged) == ["helper", "main"]
    assert merged["spec"]["template"]["spec"]["containers"][1]["env"] == [{"name": "A", "value": "2"}]


def test_nothing_to_do_is_an_empty_patch_and_others_fields_are_left_alone():
    live = deployment(MAIN, HELPER)
    live["status"] = {"replicas": 1}
    live["metadata"]["annotations"] = {"other": "x"}
    assert three_way_patch(deployment(MAIN, HELPER), deployment(MAIN, HELPER), live, "Deployment") == {}


def test_a_field_dropped_from_the_manifest_is_removed_but_one_never_applied_is_kept():
    last = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}
    live = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2", "c": "3"}}
    p, merged = apply(last, {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}},
                      live, "ConfigMap")
    assert p == {"data": {"b": None}}
    assert merged["data"] == {"a": "1", "c": "3"}


def test_primitive_merge_lists_add_and_delete_values():
    last = {"metadata": {"name": "x", "finalizers": ["a", "b"]}}
    live = {"metadata": {"name": "x", "finalizers": ["a", "b", "other"]}}
    p, merged = apply(last, {"metadata": {"name": "x", "finalizers": ["a", "c"]}}, live, "Pod")
    assert p["metadata"]["$deleteFromPrimitiveList/finalizers"] == ["b"]
    assert set(merged["metadata"]["finalizers"]) == {"a", "c", "other"}


def test_kinds_without_patch_metadata_replace_lists_with_a_merge_patch():
    last = {"spec": {"hosts": ["a", "b"], "http": [{"route": [{"destination": {"host": "a"}}]}]}}
    live = {"spec": {"hosts": ["a", "b"], "http": [{"route": [{"destination": {"host": "a"}}]}]},
            "status": {}}
    manifest = {"spec": {"hosts": ["a"], "http": [{"route": [{"destination": {"host": "b"}}]}]}}
    p, merged = apply(last, manifest, live, "VirtualService", strategic=False)
    assert p == manifest
    assert merged["spec"] == manifest["spec"]
