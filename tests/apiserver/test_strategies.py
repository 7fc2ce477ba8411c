"""The per-kind strategy seam: what the registry does per kind comes from the kind's
registration, so a kind registered later gets its own create/update/delete behaviour
without a change to the registry; built-in strategies keep Kubernetes' behaviour."""

from __future__ import annotations

import pytest

from shoal.api import errors, kinds
from shoal.api.kinds import ResourceType
from shoal.api.strategy import Strategy
from shoal.apiserver.local import LocalClient
from shoal.node import status as node_status


@pytest.fixture
async def client(tmp_path):
    async with LocalClient.open(tmp_path / "store.db") as c:
        yield c


def pod(name: str, init_resources: dict | None, app_resources: dict) -> dict:
    spec: dict = {"containers": [{"name": "app", "image": "app:1", "resources": app_resources}]}
    if init_resources is not None:
        spec["initContainers"] = [{"name": "init", "image": "init:1", "resources": init_resources}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": spec}


GUARANTEED = {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}


@pytest.mark.parametrize("name, init, expected", [
    ("unbounded-init", {}, "Burstable"),  # the init container sets nothing: not Guaranteed
    ("bounded-init", GUARANTEED, "Guaranteed"),
    ("no-init", None, "Guaranteed"),
])
async def test_qos_class_at_create_is_the_one_the_node_reports(client, name, init, expected):
    created = await client.create("pods", pod(name, init, GUARANTEED))
    assert created["status"]["qosClass"] == expected
    assert node_status.qos_class(created["spec"]) == created["status"]["qosClass"]


async def test_best_effort_pod_and_init_only_resources(client):
    best = await client.create("pods", pod("best", None, {}))
    assert best["status"]["qosClass"] == "BestEffort"
    init_only = await client.create("pods", pod("init-only", {"requests": {"memory": "64Mi"}}, {}))
    assert init_only["status"]["qosClass"] == "Burstable" == node_status.qos_class(init_only["spec"])


async def test_namespaces_every_cluster_has(client):
    items, _ = await client.list("namespaces")
    assert {n["metadata"]["name"] for n in items} == {
        "default", "kube-system", "kube-public", "kube-node-lease"}
    assert all(n["status"]["phase"] == "Active" and n["spec"]["finalizers"] == ["kubernetes"]
               for n in items)


class GadgetStrategy(Strategy):
    """Gadgets start Assembling and, once deleted, wait until their spec says disassembled."""

    def prepare_for_create(self, obj, subresources):
        obj["status"] = {"phase": "Assembling"}

    def prepare_for_delete(self, current, new, grace_seconds):
        return not (current.get("spec") or {}).get("disassembled")

    def finalized(self, obj):
        return bool((obj.get("spec") or {}).get("disassembled"))


GADGETS = ResourceType("strategy-test.shoal.dev", "v1", "Gadget", "gadgets", "gadget", True,
                       subresources=("status",))
kinds.register(GADGETS, strategy=GadgetStrategy())


async def test_a_kind_registered_later_brings_its_own_strategy(client):
    resource = GADGETS.resource
    gadget = {"apiVersion": GADGETS.api_version, "kind": "Gadget",
              "metadata": {"name": "g", "namespace": "default"}, "spec": {"size": 1},
              "status": {"phase": "Done"}}
    created = await client.create(resource, gadget)
    assert created["status"] == {"phase": "Assembling"}  # the client's status is the server's
    waiting = await client.delete(resource, "default", "g")
    assert waiting["metadata"]["deletionTimestamp"]
    assert (await client.get(resource, "default", "g"))["status"] == {"phase": "Assembling"}
    waiting["spec"]["disassembled"] = True
    await client.update(resource, waiting)  # nothing holds it any more: it goes
    with pytest.raises(errors.NotFound):
        await client.get(resource, "default", "g")


class FakeAddresses:
    """An in-memory ServiceAllocator: 10.96.0.x, node ports from 30000."""

    def __init__(self) -> None:
        self.ips: dict[str, str] = {}
        self.ports: dict[str, list[int]] = {}

    def allocate_cluster_ip(self, key, requested=None):
        ip = requested or f"10.96.0.{len(self.ips) + 10}"
        if ip in self.ips.values():
            raise ValueError(f"provided IP {ip} is already allocated")
        self.ips[key] = ip
        return ip

    def release_cluster_ip(self, key):
        self.ips.pop(key, None)

    def allocate_node_port(self, key, requested=None):
        port = requested or 30000 + sum(len(p) for p in self.ports.values())
        self.ports.setdefault(key, []).append(port)
        return port

    def release_node_ports(self, key):
        self.ports.pop(key, None)


def service(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"port": 80}], "selector": {"app": name}, **spec}}


async def test_service_strategy_allocates_and_releases_addresses(tmp_path):
    addresses = FakeAddresses()
    async with LocalClient.open(tmp_path / "store.db", services=addresses) as client:
        created = await client.create("services", service("web", type="NodePort"))
        assert created["spec"]["clusterIP"] == addresses.ips["default/web"]
        assert created["spec"]["ports"][0]["nodePort"] == addresses.ports["default/web"][0]
        with pytest.raises(errors.Invalid) as taken:
            await client.create("services", service("other", clusterIP=created["spec"]["clusterIP"]))
        assert [e.path for e in taken.value.errors] == ["spec.clusterIP"]
        assert "default/other" not in addresses.ips
        replaced = dict(created, spec=dict(created["spec"], clusterIP="", clusterIPs=[]))
        kept = await client.update("services", replaced)
        assert kept["spec"]["clusterIP"] == created["spec"]["clusterIP"]  # prepare_for_update
        await client.delete("services", "default", "web")
        assert addresses.ips == {} and addresses.ports == {}
