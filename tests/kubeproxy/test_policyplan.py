"""NetworkPolicies + Pods + Namespaces -> per-pod allow lists, with Kubernetes' semantics
(pure; the rules these become are checked in tests/network/test_policy_rules.py and on a
real kernel in tests/e2e/test_networkpolicy_e2e.py)."""

from __future__ import annotations

from shoal.kubeproxy.policyplan import ClusterDns, plan_policies
from shoal.network import Allow, Peer, PortMatch


def pod(name, ip, ns="default", labels=None, ports=(), phase="Running", **spec):
    return {"metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "ports": [dict(p) for p in ports]}], **spec},
            "status": {"podIP": ip, "phase": phase}}


def namespace(name, **labels):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def policy(name, ns="default", **spec):
    spec.setdefault("podSelector", {})
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


NAMESPACES = [namespace("default"), namespace("other", team="blue"), namespace("kube-system")]
WEB = pod("web", "10.1.0.5", labels={"app": "web"}, ports=[{"name": "http", "containerPort": 8080}])
CLIENT = pod("client", "10.1.0.6", labels={"app": "client"})
STRANGER = pod("stranger", "10.1.0.7", labels={"app": "stranger"})
BLUE = pod("blue", "10.1.0.8", ns="other", labels={"app": "client"},
           ports=[{"name": "http", "containerPort": 9090}])
PODS = [WEB, CLIENT, STRANGER, BLUE]


def by_key(plan):
    return {p.pod_key: p for p in plan}


def test_unselected_pods_are_not_isolated_and_deny_all_isolates_every_pod_of_its_namespace():
    assert plan_policies([], PODS, NAMESPACES) == []
    plan = by_key(plan_policies([policy("deny", policyTypes=["Ingress"])], PODS, NAMESPACES))
    assert set(plan) == {"default/web", "default/client", "default/stranger"}
    assert plan["default/web"].ingress == () and plan["default/web"].egress is None


def test_pod_selector_peer_and_named_port_resolved_on_the_selected_pod():
    allow = policy("allow", podSelector={"matchLabels": {"app": "web"}}, policyTypes=["Ingress"],
                   ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                             "ports": [{"port": "http", "protocol": "TCP"}]}])
    plan = by_key(plan_policies([allow], PODS, NAMESPACES))
    assert list(plan) == ["default/web"]
    assert plan["default/web"].ingress == (
        Allow((Peer("10.1.0.6/32"),), (PortMatch("TCP", 8080),), "default/allow ingress[0]"),)


def test_named_port_the_pod_lacks_allows_nothing_and_other_protocol_does_not_match():
    allow = policy("allow", policyTypes=["Ingress"], podSelector={"matchLabels": {"app": "web"}},
                   ingress=[{"ports": [{"port": "grpc", "protocol": "TCP"}]},
                            {"ports": [{"port": "http", "protocol": "UDP"}]}])
    assert by_key(plan_policies([allow], PODS, NAMESPACES))["default/web"].ingress == ()


def test_namespace_selector_alone_and_combined_with_a_pod_selector():
    alone = policy("ns", policyTypes=["Ingress"], podSelector={"matchLabels": {"app": "web"}},
                   ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}]}])
    both = policy("both", policyTypes=["Ingress"], podSelector={"matchLabels": {"app": "web"}},
                  ingress=[{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "client"}}}]}])
    [web] = plan_policies([alone], PODS, NAMESPACES)
    assert web.ingress[0].peers == (Peer("10.1.0.8/32"),)
    [web] = plan_policies([both], PODS, NAMESPACES)
    assert web.ingress[0].peers == (Peer("10.1.0.6/32"), Peer("10.1.0.8/32"))


def test_policies_are_additive_and_types_default_from_the_spec():
    a = policy("a", podSelector={"matchLabels": {"app": "web"}},
               ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}])
    b = policy("b", podSelector={"matchLabels": {"app": "web"}},
               ingress=[{"ports": [{"port": 9000, "endPort": 9010}]}],
               egress=[{"to": [{"ipBlock": {"cidr": "10.1.0.0/16", "except": ["10.1.0.7/32"]}}]}])
    [web] = plan_policies([a, b], PODS, NAMESPACES)
    assert [x.origin for x in web.ingress] == ["default/a ingress[0]", "default/b ingress[0]"]
    assert web.ingress[1] == Allow(None, (PortMatch("TCP", 9000, 9010),), "default/b ingress[0]")
    assert web.egress == (Allow((Peer("10.1.0.0/16", ("10.1.0.7/32",)),), None, "default/b egress[0]"),)


def test_egress_named_ports_resolve_per_destination_pod():
    out = policy("out", podSelector={"matchLabels": {"app": "client"}}, policyTypes=["Egress"],
                 egress=[{"to": [{"namespaceSelector": {}}], "ports": [{"port": "http", "protocol": "TCP"}]}])
    [client] = plan_policies([out], PODS, NAMESPACES)
    assert client.egress == (
        Allow((Peer("10.1.0.5/32"),), (PortMatch("TCP", 8080),), "default/out egress[0]"),
        Allow((Peer("10.1.0.8/32"),), (PortMatch("TCP", 9090),), "default/out egress[0]"),
    )


def test_cluster_dns_is_a_kube_dns_pod_for_egress_rules():
    dns = ClusterDns("10.1.0.1", 53)
    allow_dns = policy("dns", policyTypes=["Egress"], podSelector={"matchLabels": {"app": "client"}},
                       egress=[{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                                "ports": [{"port": 53, "protocol": "UDP"}, {"port": "dns-tcp", "protocol": "TCP"}]}])
    [client] = plan_policies([allow_dns], PODS, NAMESPACES, cluster_dns=dns)
    assert client.egress == (
        Allow((Peer("10.1.0.1/32"),), (PortMatch("UDP", 53),), "default/dns egress[0]"),
        Allow((Peer("10.1.0.1/32"),), (PortMatch("TCP", 53),), "default/dns egress[0]"),
    )
    # egress deny with no rule: DNS is not implicitly allowed
    [client] = plan_policies([policy("deny", policyTypes=["Egress"], podSelector={"matchLabels": {"app": "client"}})],
                             PODS, NAMESPACES, cluster_dns=dns)
    assert client.egress == ()


def test_pods_without_ip_finished_or_host_network_are_neither_selected_nor_peers():
    pending = pod("pending", "", labels={"app": "client"})
    done = pod("done", "10.1.0.20", labels={"app": "client"}, phase="Succeeded")
    hostnet = pod("hostnet", "10.0.0.1", labels={"app": "client"}, hostNetwork=True)
    allow = policy("allow", policyTypes=["Ingress"], podSelector={"matchLabels": {"app": "web"}},
                   ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}])
    plan = by_key(plan_policies([allow, policy("deny", policyTypes=["Ingress"])],
                                [WEB, pending, done, hostnet], NAMESPACES))
    assert set(plan) == {"default/web"}
    assert plan["default/web"].ingress == ()  # no client pod counts: the allow rule has no peer
