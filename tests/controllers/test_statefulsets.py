"""StatefulSets: the pure plan, and the controller against the real API with the test
kubelet (ordered creation, claims kept on scale-down, partitioned rolling update,
OnDelete, Parallel, the bad selector refused)."""

from __future__ import annotations

import pytest

from shoal.api import errors as api_errors
from shoal.controllers import pods as podutil, statefulsetplan as plan
from tests.controllers.conftest import eventually, patch


def sts(name="web", replicas=3, image="web:v1", **spec):
    body = {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "serviceName": "nginx", "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": image}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}}],
        },
    }
    body["spec"].update(spec)
    return body


def _pod(name, revision="r1", *, ready=True, phase="Running", deleting=False):
    meta = {"name": name, "labels": {"controller-revision-hash": revision}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    conds = [{"type": "Ready", "status": "True" if ready else "False",
              "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    return {"metadata": meta, "status": {"phase": phase, "conditions": conds}}


SET = {"metadata": {"name": "web", "namespace": "default", "uid": "u"}, "spec": {"replicas": 3}}


def test_ordered_ready_creates_one_at_a_time_and_waits_for_ready():
    assert plan.plan(SET, [], "r1", "r1", 0) == [plan.Step("create", 0, "r1")]
    assert plan.plan(SET, [_pod("web-0", ready=False)], "r1", "r1", 0) == []
    assert plan.plan(SET, [_pod("web-0")], "r1", "r1", 0) == [plan.Step("create", 1, "r1")]
    parallel = {**SET, "spec": {"replicas": 3, "podManagementPolicy": "Parallel"}}
    assert [s.ordinal for s in plan.plan(parallel, [], "r1", "r1", 0)] == [0, 1, 2]


def test_scale_down_deletes_highest_first_one_at_a_time():
    pods = [_pod(f"web-{i}") for i in range(5)]
    assert plan.plan(SET, pods, "r1", "r1", 0) == [plan.Step("delete", 4, pod="web-4")]
    pods[4] = _pod("web-4", deleting=True)
    assert plan.plan(SET, pods, "r1", "r1", 0) == []


def test_rolling_update_goes_down_to_the_partition():
    pods = [_pod(f"web-{i}", "r1") for i in range(3)]
    rolling = {**SET, "spec": {"replicas": 3, "updateStrategy": {
        "type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}}
    assert plan.plan(rolling, pods, "r1", "r2", 0) == [plan.Step("delete", 2, pod="web-2")]
    pods[2] = _pod("web-2", "r2")
    assert plan.plan(rolling, pods, "r1", "r2", 0) == [plan.Step("delete", 1, pod="web-1")]
    pods[1] = _pod("web-1", "r2")
    assert plan.plan(rolling, pods, "r1", "r2", 0) == []  # web-0 is below the partition
    # a deleted pod below the partition comes back at the current revision
    assert plan.revision_for_new(rolling, 0, "r1", "r2") == "r1"
    assert plan.revision_for_new(rolling, 2, "r1", "r2") == "r2"
    on_delete = {**SET, "spec": {"replicas": 3, "updateStrategy": {"type": "OnDelete"}}}
    assert plan.plan(on_delete, [_pod(f"web-{i}", "r1") for i in range(3)], "r1", "r2", 0) == []


def test_pod_identity_and_storage():
    body = sts()
    body["metadata"]["uid"] = "u1"
    pod = plan.new_pod(body, 1, body["spec"]["template"], "web-abc")
    assert pod["metadata"]["name"] == "web-1"
    assert pod["spec"]["hostname"] == "web-1" and pod["spec"]["subdomain"] == "nginx"
    assert pod["metadata"]["labels"] == {"app": "web", "controller-revision-hash": "web-abc",
                                         "statefulset.kubernetes.io/pod-name": "web-1",
                                         "apps.kubernetes.io/pod-index": "1"}
    assert pod["spec"]["volumes"] == [{"name": "www",
                                       "persistentVolumeClaim": {"claimName": "www-web-1"}}]
    (claim,) = plan.claims_for(body, 1)
    assert claim["metadata"]["name"] == "www-web-1"
    assert claim["metadata"]["labels"] == {"app": "web"}


async def _names(client, selector="app=web"):
    items, _ = await client.list("pods", "default", label_selector=selector)
    return sorted(p["metadata"]["name"] for p in items if not podutil.is_deleting(p))


async def test_ordered_creation_claims_and_scale_down_keeps_claims(cluster):
    client, manager, kubelet = cluster
    await client.create("statefulsets.apps", sts())
    assert await eventually(lambda: _names(client)) == ["web-0"]
    # web-1 waits for web-0 to be ready
    for _ in range(3):
        assert await _names(client) == ["web-0"]
    for expected in (["web-0", "web-1"], ["web-0", "web-1", "web-2"]):
        await kubelet.run_all(selector="app=web")

        async def grown(expected=expected):
            return await _names(client) == expected

        await eventually(grown)
    await kubelet.run_all(selector="app=web")

    async def ready_status():
        s = await client.get("statefulsets.apps", "default", "web")
        st = s.get("status") or {}
        return st if st.get("readyReplicas") == 3 and st.get("currentReplicas") == 3 else None

    status = await eventually(ready_status)
    assert status["currentRevision"] == status["updateRevision"]
    assert status["currentRevision"].startswith("web-")
    claims, _ = await client.list("persistentvolumeclaims", "default")
    assert sorted(c["metadata"]["name"] for c in claims) == ["www-web-0", "www-web-1", "www-web-2"]
    revs, _ = await client.list("controllerrevisions.apps", "default")
    assert [r["metadata"]["name"] for r in revs] == [status["updateRevision"]]

    await patch(client, "statefulsets.apps", "default", "web", {"spec": {"replicas": 1}})

    async def shrunk():
        return await _names(client) == ["web-0"]

    await eventually(shrunk)
    claims, _ = await client.list("persistentvolumeclaims", "default")
    assert len(claims) == 3  # kept for when the set grows again


async def test_rolling_update_with_partition_then_complete(cluster):
    client, manager, kubelet = cluster
    await client.create("statefulsets.apps", sts(
        replicas=3, podManagementPolicy="Parallel",
        updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}))

    async def all_ready():
        await kubelet.run_all(selector="app=web")
        s = await client.get("statefulsets.apps", "default", "web")
        return (s.get("status") or {}).get("readyReplicas") == 3

    await eventually(all_ready)
    old = (await client.get("statefulsets.apps", "default", "web"))["status"]["currentRevision"]
    template = sts(image="web:v2")["spec"]["template"]
    await patch(client, "statefulsets.apps", "default", "web", {"spec": {"template": template}})

    async def images():
        await kubelet.run_all(selector="app=web")
        items, _ = await client.list("pods", "default", label_selector="app=web")
        return {p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
                for p in items if not podutil.is_deleting(p)}

    async def partitioned():
        got = await images()
        return got if got == {"web-0": "web:v1", "web-1": "web:v1", "web-2": "web:v2"} else None

    await eventually(partitioned)

    async def partitioned_status():
        s = await client.get("statefulsets.apps", "default", "web")
        return s["status"] if s["status"].get("updatedReplicas") == 1 else None

    status = await eventually(partitioned_status)
    assert status["currentRevision"] == old != status["updateRevision"]
    assert status["currentReplicas"] == 2

    await patch(client, "statefulsets.apps", "default", "web",
                {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})

    async def done():
        got = await images()
        s = await client.get("statefulsets.apps", "default", "web")
        return (set(got.values()) == {"web:v2"} and len(got) == 3
                and s["status"]["currentRevision"] == s["status"]["updateRevision"])

    await eventually(done, timeout=20)


async def test_selector_not_matching_template_is_refused(api):
    bad = sts()
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(api_errors.Invalid) as caught:
        await api.create("statefulsets.apps", bad)
    assert "spec.template.metadata.labels: Invalid value" in str(caught.value)
    assert "`selector` does not match template `labels`" in str(caught.value)


async def test_retention_delete_removes_claims_of_condemned_pods(cluster):
    client, manager, kubelet = cluster
    await client.create("statefulsets.apps", sts(
        replicas=2, podManagementPolicy="Parallel",
        persistentVolumeClaimRetentionPolicy={"whenScaled": "Delete", "whenDeleted": "Retain"}))

    async def claims():
        await kubelet.run_all(selector="app=web")
        items, _ = await client.list("persistentvolumeclaims", "default")
        return sorted(c["metadata"]["name"] for c in items if not podutil.is_deleting(c))

    async def both():
        return await claims() == ["www-web-0", "www-web-1"]

    await eventually(both)
    await patch(client, "statefulsets.apps", "default", "web", {"spec": {"replicas": 1}})

    async def one():
        return await claims() == ["www-web-0"]

    await eventually(one)


async def test_going_back_to_an_old_template_renumbers_its_revision(cluster):
    client, manager, kubelet = cluster
    await client.create("statefulsets.apps", sts(replicas=1))

    async def revisions():
        items, _ = await client.list("controllerrevisions.apps", "default")
        return sorted((r["revision"], r["metadata"]["name"]) for r in items)

    async def count(n):
        got = await revisions()
        return got if len(got) == n else None

    ((_, first),) = await eventually(lambda: count(1))
    for image in ("web:v2", "web:v1"):
        await patch(client, "statefulsets.apps", "default", "web",
                    {"spec": {"template": sts(image=image)["spec"]["template"]}})
        await eventually(lambda: count(2))

    async def renumbered():
        got = await revisions()
        return got if got and got[-1] == (3, first) else None

    got = await eventually(renumbered)
    assert [n for n, _ in got] == [2, 3]
    revision = await client.get("controllerrevisions.apps", "default", first)
    assert revision["data"]["spec"]["template"]["$patch"] == "replace"
    assert revision["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
