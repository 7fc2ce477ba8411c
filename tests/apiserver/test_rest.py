"""The REST API as any HTTP client sees it: paths, verbs, Status errors, watch."""

from __future__ import annotations

import json
import secrets
import ssl
import threading


import httpx
import pytest


def ns_manifest(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


@pytest.fixture
def ns(api):
    name = f"t-{secrets.token_hex(3)}"
    assert api.post("/api/v1/namespaces", json=ns_manifest(name)).status_code == 201
    return name


def deployment(name: str, replicas: int = 2, image: str = "busybox") -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "main", "image": image}]}},
        },
    }


def test_requests_without_the_token_get_401(shoal):
    with httpx.Client(base_url=shoal.url, verify=ssl.create_default_context(cafile=shoal.ca)) as anon:
        r = anon.get("/api/v1/namespaces")
        assert r.status_code == 401
        assert r.json()["kind"] == "Status" and r.json()["code"] == 401
        r = anon.get("/api/v1/namespaces", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        assert anon.get("/version").json()["major"] == "1"  # public, like Kubernetes


def test_discovery(api):
    assert api.get("/api").json()["versions"] == ["v1"]
    groups = {g["name"] for g in api.get("/apis").json()["groups"]}
    assert "apps" in groups
    core = {r["name"]: r for r in api.get("/api/v1").json()["resources"]}
    for plural in ("pods", "services", "endpoints", "configmaps", "secrets", "namespaces",
                   "serviceaccounts", "events", "persistentvolumeclaims", "pods/status"):
        assert plural in core, plural
    assert core["namespaces"]["namespaced"] is False and core["pods"]["namespaced"] is True
    apps = {r["name"] for r in api.get("/apis/apps/v1").json()["resources"]}
    assert {"deployments", "replicasets", "deployments/scale", "deployments/status"} <= apps


def put_with_retry(api, path: str, change) -> httpx.Response:
    """Read-modify-write as a careful client does: controllers may write status between
    our read and our write, and the server answers 409 then."""
    for _ in range(10):
        obj = api.get(path).json()
        change(obj)
        r = api.put(path, json=obj)
        if r.status_code != 409:
            return r
    return r


def test_crud_and_defaults(api, ns):
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    r = api.post(base, json=deployment("web"))
    assert r.status_code == 201, r.text
    created = r.json()
    meta = created["metadata"]
    assert meta["namespace"] == ns and meta["uid"] and meta["generation"] == 1
    assert created["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    assert created["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert created["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30

    got = api.get(f"{base}/web").json()
    assert got["spec"] == created["spec"] and got["metadata"]["uid"] == meta["uid"]
    listed = api.get(base).json()
    assert listed["kind"] == "DeploymentList" and [i["metadata"]["name"] for i in listed["items"]] == ["web"]

    r = put_with_retry(api, f"{base}/web", lambda o: o["spec"].__setitem__("replicas", 5))
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["spec"]["replicas"] == 5 and updated["metadata"]["generation"] == 2
    assert int(updated["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

    # a no-op update writes nothing
    for _ in range(10):
        current = api.get(f"{base}/web").json()
        r = api.put(f"{base}/web", json=current)
        if r.status_code != 409:  # a controller wrote in between; read again
            break
    assert r.json()["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]

    r = api.patch(f"{base}/web", content=json.dumps({"metadata": {"labels": {"tier": "front"}}}),
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200 and r.json()["metadata"]["labels"]["tier"] == "front"
    r = api.patch(f"{base}/web", content=json.dumps(
        [{"op": "replace", "path": "/spec/replicas", "value": 1}]),
        headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 200 and r.json()["spec"]["replicas"] == 1

    r = api.delete(f"{base}/web")
    assert r.status_code == 200
    assert api.get(f"{base}/web").status_code == 404


def test_scale_and_status_subresources(api, ns):
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    api.post(base, json=deployment("sc", replicas=1))
    scale = api.get(f"{base}/sc/scale").json()
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
    r = put_with_retry(api, f"{base}/sc/scale", lambda o: o["spec"].__setitem__("replicas", 4))
    assert r.status_code == 200 and r.json()["spec"]["replicas"] == 4
    assert api.get(f"{base}/sc").json()["spec"]["replicas"] == 4

    def change_status(obj):
        obj["status"] = {"replicas": 4, "observedGeneration": 99}
        obj["spec"]["replicas"] = 9  # ignored on /status

    r = put_with_retry(api, f"{base}/sc/status", change_status)
    assert r.status_code == 200, r.text
    assert r.json()["status"]["observedGeneration"] == 99 and r.json()["spec"]["replicas"] == 4
    # and status is ignored on the main resource
    r = put_with_retry(api, f"{base}/sc", lambda o: o["status"].__setitem__("observedGeneration", 0))
    assert r.json()["status"].get("observedGeneration") != 0


def test_label_and_field_selectors(api, ns):
    base = f"/api/v1/namespaces/{ns}/configmaps"
    for name, labels in (("a", {"app": "web", "tier": "front"}), ("b", {"app": "web"}),
                         ("c", {"app": "db"})):
        api.post(base, json={"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": name, "labels": labels}})

    def names(**params):
        return [i["metadata"]["name"] for i in api.get(base, params=params).json()["items"]]

    assert names(labelSelector="app=web") == ["a", "b"]
    assert names(labelSelector="app in (web,db),!tier") == ["b", "c"]
    assert names(fieldSelector="metadata.name=c") == ["c"]
    assert names(fieldSelector="metadata.name!=c", labelSelector="app") == ["a", "b"]
    r = api.get(base, params={"fieldSelector": "spec.nope=1"})
    assert r.status_code == 400 and "spec.nope" in r.json()["message"]
    all_ns = api.get("/api/v1/configmaps", params={"labelSelector": "app=db"}).json()["items"]
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in all_ns] == [(ns, "c")]


@pytest.mark.parametrize("case", [
    "malformed-json", "wrong-kind", "wrong-apiversion", "missing-field", "bad-name",
    "unknown-field", "oversized", "stale", "exists", "missing-object", "unknown-resource",
])
def test_bad_input_gets_a_status_with_the_right_code(api, ns, case):
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    if case == "malformed-json":
        r = api.post(base, content=b'{"apiVersion": "apps/v1", "kind": ',
                     headers={"Content-Type": "application/json"})
        code, needle = 400, "not valid JSON"
    elif case == "wrong-kind":
        r = api.post(base, json={**deployment("x"), "kind": "Deploymnt"})
        code, needle = 400, "Deploymnt"
    elif case == "wrong-apiversion":
        r = api.post(base, json={**deployment("x"), "apiVersion": "apps/v9"})
        code, needle = 400, "apps/v9"
    elif case == "missing-field":
        d = deployment("x")
        del d["spec"]["template"]["spec"]["containers"][0]["image"]
        r = api.post(base, json=d)
        code, needle = 422, "spec.template.spec.containers[0].image"
    elif case == "bad-name":
        r = api.post(base, json=deployment("Bad_Name"))
        code, needle = 422, "metadata.name"
    elif case == "unknown-field":
        d = deployment("x")
        d["spec"]["replicaz"] = 3
        r = api.post(base, json=d)
        code, needle = 422, "replicaz"
    elif case == "oversized":
        d = deployment("x")
        d["metadata"]["annotations"] = {"big": "x" * (4 * 1024 * 1024)}
        r = api.post(base, json=d)
        code, needle = 413, "limit"
    elif case == "stale":
        created = api.post(base, json=deployment("st")).json()
        assert put_with_retry(api, f"{base}/st",
                              lambda o: o["spec"].__setitem__("replicas", 3)).status_code == 200
        created["spec"]["replicas"] = 7  # still carries the old resourceVersion
        r = api.put(f"{base}/st", json=created)
        code, needle = 409, "has been modified"
    elif case == "exists":
        api.post(base, json=deployment("dup"))
        r = api.post(base, json=deployment("dup"))
        code, needle = 409, "already exists"
    elif case == "missing-object":
        r = api.get(f"{base}/nothing-here")
        code, needle = 404, '"nothing-here" not found'
    else:
        r = api.get(f"/api/v1/namespaces/{ns}/gizmos")
        code, needle = 404, "gizmos"
    assert r.status_code == code, r.text
    status = r.json()
    assert status["kind"] == "Status" and status["code"] == code and status["status"] == "Failure"
    assert needle in status["message"], status["message"]
    # the server keeps serving
    assert api.get("/api/v1/namespaces/default").status_code == 200


def test_watch_streams_events_after_a_revision(api, ns):
    base = f"/api/v1/namespaces/{ns}/configmaps"
    first = api.post(base, json={"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "w0"}}).json()
    rv = first["metadata"]["resourceVersion"]
    events: list[tuple[str, str]] = []

    def watch() -> None:
        with api.stream("GET", base, params={"watch": "true", "resourceVersion": rv,
                                             "timeoutSeconds": "10"}) as response:
            for line in response.iter_lines():
                if line:
                    e = json.loads(line)
                    if e["object"]["metadata"]["name"] not in ("w0", "w1"):
                        continue  # e.g. kube-root-ca.crt from the namespace controller
                    events.append((e["type"], e["object"]["metadata"]["name"]))
                    if len(events) == 3:
                        return

    t = threading.Thread(target=watch)
    t.start()
    api.post(base, json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w1"}})
    api.patch(f"{base}/w1", content=b'{"data":{"a":"b"}}',
              headers={"Content-Type": "application/merge-patch+json"})
    api.delete(f"{base}/w0")
    t.join(15)
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w0")]


def test_namespace_deletion_is_graceful_and_blocks_new_content(api):
    name = f"gone-{secrets.token_hex(2)}"
    api.post("/api/v1/namespaces", json=ns_manifest(name))
    r = api.delete(f"/api/v1/namespaces/{name}")
    assert r.status_code in (200, 202)
    ns = api.get(f"/api/v1/namespaces/{name}")
    if ns.status_code == 200:  # the namespace controller may already have finished
        assert ns.json()["status"]["phase"] == "Terminating"
        r = api.post(f"/api/v1/namespaces/{name}/configmaps",
                     json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
        assert r.status_code in (403, 404)
