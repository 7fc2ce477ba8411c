"""The official kubernetes Python client against shoal: list, create, watch, delete."""

from __future__ import annotations

import secrets
import threading

import pytest
from kubernetes import client as k8s
from kubernetes import config, watch


@pytest.fixture
def core(shoal):
    api_client = config.new_client_from_config(config_file=str(shoal.kubeconfig))
    yield k8s.CoreV1Api(api_client), k8s.AppsV1Api(api_client)
    api_client.close()


def test_list_create_watch_delete(core):
    v1, apps = core
    ns = f"py-{secrets.token_hex(3)}"
    v1.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns)))
    assert ns in [n.metadata.name for n in v1.list_namespace().items]

    seen: list[tuple[str, str]] = []
    start_rv = v1.list_namespaced_config_map(ns).metadata.resource_version

    def run_watch() -> None:
        w = watch.Watch()
        for event in w.stream(v1.list_namespaced_config_map, ns, resource_version=start_rv,
                              timeout_seconds=10):
            if event["object"].metadata.name != "settings":
                continue  # e.g. kube-root-ca.crt, published by the namespace controller
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 2:
                w.stop()

    t = threading.Thread(target=run_watch)
    t.start()
    v1.create_namespaced_config_map(ns, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="settings"), data={"color": "blue"}))
    v1.delete_namespaced_config_map("settings", ns)
    t.join(15)
    assert seen == [("ADDED", "settings"), ("DELETED", "settings")]

    dep = k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name="api"),
        spec=k8s.V1DeploymentSpec(
            replicas=2,
            selector=k8s.V1LabelSelector(match_labels={"app": "api"}),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels={"app": "api"}),
                spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="api", image="busybox")]))))
    created = apps.create_namespaced_deployment(ns, dep)
    assert created.spec.strategy.type == "RollingUpdate"
    assert [d.metadata.name for d in apps.list_namespaced_deployment(ns).items] == ["api"]
    apps.delete_namespaced_deployment("api", ns)
    assert apps.list_namespaced_deployment(ns).items == [] or all(
        d.metadata.deletion_timestamp for d in apps.list_namespaced_deployment(ns).items)

    with pytest.raises(k8s.ApiException) as exc:
        v1.read_namespaced_config_map("settings", ns)
    assert exc.value.status == 404
