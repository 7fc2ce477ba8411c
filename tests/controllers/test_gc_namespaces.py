"""Garbage collection and namespace lifecycle against the real API."""

from __future__ import annotations

import asyncio

from shoal.api import errors as api_errors
from tests.controllers.conftest import deployment, eventually


async def _counts(client, namespace="default"):
    rss, _ = await client.list("replicasets.apps", namespace)
    pods, _ = await client.list("pods", namespace)
    return len(rss), len(pods)


async def _wait_pods(client, n, namespace="default"):
    async def check():
        return (await _counts(client, namespace))[1] == n
    await eventually(check)


async def test_deleting_a_deployment_collects_replicasets_and_pods(cluster):
    client, manager, kubelet = cluster
    await client.create("deployments.apps", deployment(replicas=2))
    await _wait_pods(client, 2)
    await client.delete("deployments.apps", "default", "web")

    async def gone():
        return await _counts(client) == (0, 0)

    await eventually(gone)


async def test_foreground_deletion_waits_for_dependents(cluster):
    client, manager, kubelet = cluster
    await client.create("deployments.apps", deployment(replicas=2))
    await _wait_pods(client, 2)
    kubelet.finish_deletions = False
    deleted = await client.delete("deployments.apps", "default", "web",
                                  propagation_policy="Foreground")
    assert "foregroundDeletion" in deleted["metadata"]["finalizers"]

    async def pods_terminating():
        pods, _ = await client.list("pods", "default")
        return pods and all(p["metadata"].get("deletionTimestamp") for p in pods)

    await eventually(pods_terminating)
    await asyncio.sleep(0.2)
    # pods still exist, so the Deployment waits
    d = await client.get("deployments.apps", "default", "web")
    assert d["metadata"]["deletionTimestamp"]
    kubelet.finish_deletions = True

    async def deployment_gone():
        try:
            await client.get("deployments.apps", "default", "web")
        except api_errors.NotFound:
            return await _counts(client) == (0, 0)
        return False

    await eventually(deployment_gone)


async def test_orphan_deletion_leaves_replicasets_and_pods(cluster):
    client, manager, kubelet = cluster
    await client.create("deployments.apps", deployment(replicas=2))
    await _wait_pods(client, 2)
    await client.delete("deployments.apps", "default", "web", propagation_policy="Orphan")

    async def orphaned():
        try:
            await client.get("deployments.apps", "default", "web")
            return False
        except api_errors.NotFound:
            rss, _ = await client.list("replicasets.apps", "default")
            return rss and not rss[0]["metadata"].get("ownerReferences")

    await eventually(orphaned)
    await asyncio.sleep(0.3)
    assert await _counts(client) == (1, 2)


async def test_namespace_deletion_removes_everything_then_the_namespace(cluster):
    client, manager, kubelet = cluster
    await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": "team"}})

    async def has_default_sa():
        sas, _ = await client.list("serviceaccounts", "team")
        return [s["metadata"]["name"] for s in sas] == ["default"]

    await eventually(has_default_sa)
    body = deployment(replicas=2)
    body["metadata"]["namespace"] = "team"
    await client.create("deployments.apps", body)
    await client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": "cfg", "namespace": "team"},
                                       "data": {"a": "b"}})
    await _wait_pods(client, 2, "team")
    pods, _ = await client.list("pods", "team")
    for p in pods:
        await kubelet.run(p)
    await client.delete("namespaces", None, "team")
    ns = await client.get("namespaces", None, "team")
    assert ns["status"]["phase"] == "Terminating"

    async def namespace_gone():
        try:
            await client.get("namespaces", None, "team")
            return False
        except api_errors.NotFound:
            return True

    await eventually(namespace_gone, timeout=10)
    for resource in ("pods", "replicasets.apps", "deployments.apps", "configmaps",
                     "serviceaccounts"):
        items, _ = await client.list(resource, "team")
        assert items == [], resource


async def test_startup_namespaces_exist(cluster):
    client, manager, kubelet = cluster
    for name in ("default", "kube-system"):
        ns = await client.get("namespaces", None, name)
        assert ns["status"]["phase"] == "Active"

    async def default_sa():
        sas, _ = await client.list("serviceaccounts", "kube-system")
        return any(s["metadata"]["name"] == "default" for s in sas)

    await eventually(default_sa)


async def test_root_ca_configmap_published_when_ca_exists(api, tmp_path):
    from shoal.apiserver import pki
    from shoal.config import Settings
    from shoal.controllers import build_manager
    from tests.controllers.conftest import FAST

    settings = Settings(state_dir=tmp_path)
    creds = pki.ensure_credentials(settings)
    manager = build_manager(api, settings, FAST)
    await manager.start()
    try:
        async def published():
            try:
                cm = await api.get("configmaps", "default", "kube-root-ca.crt")
            except api_errors.NotFound:
                return None
            return cm

        cm = await eventually(published)
        assert cm["data"]["ca.crt"] == creds.ca_cert.read_text()
        assert "PRIVATE" not in cm["data"]["ca.crt"]
    finally:
        await manager.stop()
