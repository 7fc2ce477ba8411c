"""Kubernetes objects for the pure tests."""

from __future__ import annotations

from shoal.mesh.source import ClusterState

STATUS = {"sidecar.istio.io/status": "{}"}


def pod(name, ip, labels, sa="default", ports=(), ns="default", sidecar=True, ready=True):
    return ("pods", {
        "metadata": {"name": name, "namespace": ns, "labels": labels,
                     "annotations": dict(STATUS) if sidecar else {}},
        "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "ports": [
            {"containerPort": p, "name": n} for n, p in ports]}]},
        "status": {"podIP": ip, "phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    })


def service(name, vip, selector, ports, ns="default"):
    return ("services", {"metadata": {"name": name, "namespace": ns},
                         "spec": {"clusterIP": vip, "selector": selector, "ports": ports}})


def peer_auth(name, ns, mode=None, selector=None, ports=None, created="2024-01-01T00:00:00Z"):
    spec = {}
    if mode:
        spec["mtls"] = {"mode": mode}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    if ports:
        spec["portLevelMtls"] = {str(p): {"mode": m} for p, m in ports.items()}
    return ("peerauthentications.security.istio.io", {
        "apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
        "spec": spec})


def cluster(*extra) -> ClusterState:
    return ClusterState.of([
        pod("client", "10.0.0.2", {"app": "client"}, sa="sleep"),
        pod("web-1", "10.0.0.3", {"app": "web"}, sa="web", ports=[("http", 8080)]),
        pod("web-2", "10.0.0.4", {"app": "web"}, sa="web", ports=[("http", 8080)], sidecar=False),
        pod("web-3", "10.0.0.5", {"app": "web"}, sa="web", ports=[("http", 8080)], ready=False),
        pod("db", "10.0.0.6", {"app": "db"}, sa="db", ports=[("tcp-pg", 5432)], ns="data"),
        service("web", "10.96.0.10", {"app": "web"}, [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "grpc-api", "port": 9090, "targetPort": 9090}]),
        service("db", "10.96.0.20", {"app": "db"}, [{"name": "tcp-pg", "port": 5432}], ns="data"),
        *extra,
    ])
