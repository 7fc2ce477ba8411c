"""ClusterIP and NodePort allocation (the API server's calls): persistence and clear errors."""

from __future__ import annotations

import pytest

from shoal.network import AllocationConflictError, OutOfRangeError, PodNetwork, RangeExhaustedError
from shoal.store.allocations import Allocations
from tests.network.conftest import make_settings


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "state")


@pytest.fixture
def net(settings):
    allocations = Allocations(settings.store_path)
    yield PodNetwork(settings, allocations)  # no kernel state: allocation only
    allocations.close()


def test_cluster_ip_is_stable_per_service_and_survives_restart(net, settings):
    ip = net.allocate_cluster_ip("default/web")
    assert ip.startswith(settings.service_cidr.rsplit(".", 1)[0])
    assert net.allocate_cluster_ip("default/web") == ip
    other = net.allocate_cluster_ip("default/db")
    assert other != ip
    restarted = PodNetwork(settings, Allocations(settings.store_path))
    assert restarted.allocate_cluster_ip("default/web") == ip
    assert restarted.allocate_cluster_ip("default/cache") not in {ip, other}


def test_requested_cluster_ip_conflict_and_range_errors(net, settings):
    base = settings.service_cidr.rsplit(".", 1)[0]
    assert net.allocate_cluster_ip("default/kubernetes", f"{base}.1") == f"{base}.1"
    with pytest.raises(AllocationConflictError, match=rf"{base}\.1 is already allocated to default/kubernetes"):
        net.allocate_cluster_ip("default/web", f"{base}.1")
    with pytest.raises(OutOfRangeError, match=r"not a usable address of service_cidr"):
        net.allocate_cluster_ip("default/web", "10.99.0.1")
    with pytest.raises(OutOfRangeError, match="not an IPv4 address"):
        net.allocate_cluster_ip("default/web", "banana")
    net.release_cluster_ip("default/kubernetes")
    assert net.allocate_cluster_ip("default/web", f"{base}.1") == f"{base}.1"


def test_exhausted_service_cidr(tmp_path):
    from dataclasses import replace

    settings = replace(make_settings(tmp_path / "state"), service_cidr="10.202.250.0/30")
    net = PodNetwork(settings, Allocations(settings.store_path))
    net.allocate_cluster_ip("default/a")
    net.allocate_cluster_ip("default/b")
    with pytest.raises(RangeExhaustedError, match=r"service_cidr 10\.202\.250\.0/30 is exhausted: all 2 addresses"):
        net.allocate_cluster_ip("default/c")


def test_node_port_clash_is_a_clear_error(net, settings):
    low, high = settings.node_port_range
    assert net.allocate_node_port("default/web", low) == low
    assert net.allocate_node_port("default/web", low) == low  # same service: idempotent
    with pytest.raises(AllocationConflictError, match=f"port {low} is already allocated to default/web"):
        net.allocate_node_port("default/other", low)
    with pytest.raises(OutOfRangeError, match=f"outside node_port_range {low}-{high}"):
        net.allocate_node_port("default/other", high + 1)
    second = net.allocate_node_port("default/web")
    assert low < second <= high and net.node_ports_of("default/web") == [low, second]
    net.release_node_port("default/web", low)
    assert net.node_ports_of("default/web") == [second]
    net.release_node_port("default/web")
    assert net.node_ports_of("default/web") == []


def test_node_port_range_exhausted(tmp_path):
    from dataclasses import replace

    settings = replace(make_settings(tmp_path / "state"), node_port_range=(24990, 24991))
    net = PodNetwork(settings, Allocations(settings.store_path))
    net.allocate_node_port("default/a")
    net.allocate_node_port("default/b")
    with pytest.raises(RangeExhaustedError, match="node_port_range 24990-24991 is exhausted"):
        net.allocate_node_port("default/c")
