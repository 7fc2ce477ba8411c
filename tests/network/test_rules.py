"""Pure rendering of iptables rules: what the kernel will be told, without a kernel."""

from __future__ import annotations

import re

from shoal.config import Settings
from shoal.network import EndpointView, PortMapping, Sandbox, ServicePort, ServiceProxy, ServiceView
from shoal.network import hostports, names, rules

SETTINGS = Settings(chain_prefix="SHOALT1234", pod_cidr="10.201.1.0/24", service_cidr="10.202.1.0/24")


def svc(name="web", cluster_ip="10.202.1.10", ips=("10.201.1.2", "10.201.1.3", "10.201.1.4"), node_port=None, **kw):
    return ServiceView(
        namespace="default", name=name, cluster_ip=cluster_ip,
        ports=(ServicePort(80, name="http", node_port=node_port),),
        endpoints=tuple(EndpointView(ip=ip, target_ports={"http": 8080}, **kw) for ip in ips),
    )


def lines(text, chain_part):
    return [line for line in text.splitlines() if line.startswith("-A") and chain_part in line.split()[1]]


def test_three_endpoints_share_traffic_evenly():
    text = ServiceProxy(SETTINGS, masquerade_pod_traffic=False).render([svc()])
    svc_rules = lines(text, "-SVC-")
    probs = [re.search(r"--probability (\S+)", r) for r in svc_rules]
    assert [p.group(1) if p else None for p in probs] == ["0.3333333333", "0.5000000000", None]
    dnat = sorted(re.search(r"--to-destination (\S+)", r).group(1) for r in lines(text, "-SEP-") if "DNAT" in r)
    assert dnat == ["10.201.1.2:8080", "10.201.1.3:8080", "10.201.1.4:8080"]
    entry = lines(text, "SHOALT1234-SERVICES")
    assert "-d 10.202.1.10/32 -p tcp -m tcp --dport 80" in entry[0]
    assert entry[-1].endswith("-j SHOALT1234-NODEPORTS") and "LOCAL" in entry[-1]
    # hairpin: an endpoint reaching itself is masqueraded
    assert any("-s 10.201.1.2/32" in r and "MARK-MASQ" in r for r in lines(text, "-SEP-"))


def test_headless_unready_and_empty_services_get_no_rules():
    text = ServiceProxy(SETTINGS, masquerade_pod_traffic=False).render([
        svc("headless", cluster_ip=None),
        svc("empty", ips=()),
        svc("unready", ready=False),
    ])
    assert lines(text, "-SVC-") == [] and lines(text, "-SEP-") == []
    assert len(lines(text, "SHOALT1234-SERVICES")) == 1  # only the NodePort jump


def test_node_port_is_masqueraded_and_reaches_the_service_chain():
    text = ServiceProxy(SETTINGS, masquerade_pod_traffic=False).render([svc(node_port=24001)])
    np = lines(text, "SHOALT1234-NODEPORTS")
    assert "--dport 24001" in np[0] and np[0].endswith("-j SHOALT1234-MARK-MASQ")
    assert "--dport 24001" in np[1] and "-SVC-" in np[1]


def test_without_br_netfilter_pod_traffic_is_masqueraded():
    text = ServiceProxy(SETTINGS, masquerade_pod_traffic=True).render([svc()])
    assert "-s 10.201.1.0/24 -j SHOALT1234-MARK-MASQ" in lines(text, "-SVC-")[0]


def test_stale_chains_are_flushed_and_deleted_in_the_same_transaction():
    proxy = ServiceProxy(SETTINGS, masquerade_pod_traffic=False)
    before = proxy.render([svc(), svc("db", cluster_ip="10.202.1.11")])
    existing = {line[1:].split()[0] for line in before.splitlines() if line.startswith(":")}
    after = proxy.render([svc()], existing_chains=existing | {"SHOAL-SVC-OTHERINSTANCE", "KUBE-SVC-X"})
    deleted = [line.split()[1] for line in after.splitlines() if line.startswith("-X")]
    assert deleted and all(c.startswith("SHOALT1234-S") for c in deleted)
    assert all(f":{c} - [0:0]" in after for c in deleted)  # declared (flushed) before -X


def test_chain_names_fit_iptables_limit():
    text = ServiceProxy(Settings(chain_prefix="SHOALTabcdef"), masquerade_pod_traffic=False).render([svc()])
    chains = [line[1:].split()[0] for line in text.splitlines() if line.startswith(":")]
    assert chains and max(len(c) for c in chains) <= names.MAX_CHAIN_LEN


def test_host_ports_render_masquerade_then_dnat():
    sb = Sandbox("default/a", "ns", "/run/netns/ns", "10.201.1.2", "10.201.1.1", 24, "i", "u", "v",
                 port_mappings=(PortMapping(24500, 80), PortMapping(24501, 53, "UDP", "127.0.0.1")))
    text = rules.render(hostports.render_hostports("SHOALT1234", [sb]))
    hp = lines(text, "SHOALT1234-HOSTPORTS")
    assert hp[0].endswith("-j SHOALT1234-MARK-MASQ") and "--to-destination 10.201.1.2:80" in hp[1]
    assert "-d 127.0.0.1/32 -p udp -m udp --dport 24501" in hp[2]


def test_kubernetes_objects_become_views_with_resolved_ports():
    from shoal.network import service_view

    service = {"metadata": {"name": "web", "namespace": "shop"},
               "spec": {"type": "NodePort", "clusterIP": "10.202.1.10",
                        "ports": [{"name": "http", "port": 80, "targetPort": "web", "nodePort": 24010}]}}
    endpoints = {"metadata": {"name": "web", "namespace": "shop"}, "subsets": [
        {"addresses": [{"ip": "10.201.1.2", "targetRef": {"kind": "Pod", "name": "web-a"}}],
         "notReadyAddresses": [{"ip": "10.201.1.3"}],
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
        {"addresses": [{"ip": "10.201.1.4"}], "ports": [{"name": "http", "port": 9090}]},
    ]}
    view = service_view(service, endpoints)
    assert view.key == "shop/web" and view.ports[0].node_port == 24010
    assert [(e.ip, e.target_ports["http"], e.ready) for e in view.endpoints] == [
        ("10.201.1.2", 8080, True), ("10.201.1.3", 8080, False), ("10.201.1.4", 9090, True)]
    text = ServiceProxy(SETTINGS, masquerade_pod_traffic=False).render([view])
    assert sorted(re.findall(r"--to-destination (\S+)", text)) == ["10.201.1.2:8080", "10.201.1.4:9090"]
    headless = service_view({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}})
    assert headless.headless and headless.namespace == "default" and headless.endpoints == ()
