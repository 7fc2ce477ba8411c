"""MeshHooks decisions (pure parts): only injected pods are touched."""

from shoal.mesh import inject
from shoal.mesh.sidecar import MeshHooks
from shoal.node.hooks import NoHooks

APP = {"metadata": {"name": "web", "namespace": "default", "annotations": {
    "traffic.sidecar.istio.io/excludeOutboundPorts": "5432"}},
       "spec": {"containers": [{"name": "app", "image": "busybox"}]}}


def test_plain_pods_are_left_alone():
    hooks = MeshHooks()
    assert hooks.sandbox_iptables(APP) == ""
    assert not hooks.holds_start(APP, APP["spec"]["containers"][0])
    assert not hooks.probe_in_netns(APP)
    assert NoHooks().sandbox_iptables(inject.inject(APP)) == ""


def test_injected_pods_get_capture_ordering_and_netns_probes():
    pod = inject.inject(APP)
    hooks = MeshHooks()
    rules = hooks.sandbox_iptables(pod)
    assert "ISTIO_OUTPUT" in rules and "--dport 5432" in rules and "1337" in rules
    every = list(pod["spec"].get("initContainers") or []) + list(pod["spec"]["containers"])
    proxy = next(c for c in every if c["name"] == "istio-proxy")
    app = next(c for c in every if c["name"] == "app")
    assert hooks.holds_start(pod, proxy) and not hooks.holds_start(pod, app)
    assert hooks.probe_in_netns(pod)
