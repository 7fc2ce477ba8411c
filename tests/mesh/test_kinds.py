"""The API seams: PeerAuthentication served and validated, injection as admission."""

from __future__ import annotations

import pytest

from shoal.api import kinds as api_kinds
from shoal.api import validation
from shoal.api.errors import Invalid
from shoal.apiserver.admission import AdmissionRequest
from shoal.mesh import kinds


@pytest.fixture
def registry():
    """Register the mesh kinds for one test only: other test modules in the same
    process must see the API's kinds as they were."""
    saved = dict(api_kinds._registry)
    kinds.register_kinds()
    try:
        yield
    finally:
        api_kinds._registry.clear()
        api_kinds._registry.update(saved)
        api_kinds._reindex()


def test_peer_authentication_is_served_and_validated(registry):
    rt = api_kinds.by_kind("security.istio.io/v1", "PeerAuthentication")
    assert rt.resource == "peerauthentications.security.istio.io" and rt.namespaced
    good = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": "shop"},
            "spec": {"mtls": {"mode": "STRICT"}}}
    validation.validate(good)
    bad = {**good, "spec": {"mtls": {"mode": "MUTUAL"}}}
    with pytest.raises(Invalid) as info:
        validation.validate(bad)
    assert "spec.mtls.mode" in str(info.value) and "MUTUAL" in str(info.value)


async def test_injection_step_mutates_and_rejects():
    step = kinds.injection_step()
    pod_type = api_kinds.by_kind("v1", "Pod")
    ns = {"metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"},
           "spec": {"containers": [{"name": "app", "image": "x"}]}}
    injected = await step(AdmissionRequest("CREATE", pod_type, pod, None, ns))
    assert [c["name"] for c in injected["spec"]["initContainers"]] == ["istio-proxy"]
    assert [c["name"] for c in injected["spec"]["containers"]] == ["app"]
    assert await step(AdmissionRequest("UPDATE", pod_type, pod, pod, ns)) is None
    assert await step(AdmissionRequest("CREATE", pod_type, pod, None, {"metadata": {"name": "x"}})) is None
    bad = {**pod, "spec": {"containers": [{"name": "app", "image": "x",
                                          "securityContext": {"runAsUser": 1337}}]}}
    with pytest.raises(Invalid) as info:
        await step(AdmissionRequest("CREATE", pod_type, bad, None, ns))
    assert "spec.containers[0].securityContext.runAsUser" in str(info.value)
