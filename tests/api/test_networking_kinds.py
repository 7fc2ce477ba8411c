"""NetworkPolicy and EndpointSlice through the API: defaults, validation messages with
field paths as Kubernetes words them, and the tables kubectl prints."""

from __future__ import annotations

import datetime as dt

import pytest

from shoal.api import errors, printers
from shoal.apiserver.local import LocalClient
from tests.api.test_validation import problems

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
async def api(tmp_path):
    async with LocalClient.open(tmp_path / "store.db") as client:
        yield client


def policy(**spec):
    body = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "default"}, "spec": {"podSelector": {}}}
    body["spec"].update(spec)
    return body


def ingress_port(**port):
    return policy(ingress=[{"ports": [port]}])


async def test_policy_types_and_protocols_default_as_kubernetes_does(api):
    plain = await api.create("networkpolicies.networking.k8s.io", ingress_port(port=80))
    assert plain["spec"]["policyTypes"] == ["Ingress"]
    assert plain["spec"]["ingress"][0]["ports"][0]["protocol"] == "TCP"
    both = await api.create("networkpolicies", {**policy(egress=[{"ports": [{"port": 53, "protocol": "UDP"}]}]),
                                                "metadata": {"name": "e", "namespace": "default"}})
    assert both["spec"]["policyTypes"] == ["Ingress", "Egress"]
    explicit = await api.create("netpol", {**policy(policyTypes=["Egress"]),
                                           "metadata": {"name": "x", "namespace": "default"}})
    assert explicit["spec"]["policyTypes"] == ["Egress"]


@pytest.mark.parametrize("body, message", [
    (ingress_port(port=70000), "spec.ingress[0].ports[0].port: Invalid value: 70000: must be between 1 and "
                               "65535, inclusive"),
    (ingress_port(port="no_such_name!"), 'spec.ingress[0].ports[0].port: Invalid value: "no_such_name!"'),
    (ingress_port(endPort=90), "spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified "
                               "when `port` is not specified"),
    (ingress_port(port=100, endPort=90), "spec.ingress[0].ports[0].endPort: Invalid value: 100: must be "
                                         "greater than or equal to `port`"),
    (ingress_port(port="http", endPort=90), "spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be "
                                            "specified when `port` is non-numeric"),
    (ingress_port(port=80, protocol="ICMP"), 'spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": '
                                             'supported values: "TCP", "UDP", "SCTP"'),
    (policy(ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]),
     'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": must be a valid CIDR value'),
    (policy(egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}}]}]),
     'spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`'),
    (policy(egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.0.0/16"]}}]}]),
     'spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "10.0.0.0/16": must be a strict subset of `cidr`'),
    (policy(ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]),
     "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer"),
    (policy(ingress=[{"from": [{}]}]), "spec.ingress[0].from[0]: Required value: must specify a peer"),
    (policy(policyTypes=["Ingress", "Sideways"]),
     'spec.policyTypes[1]: Unsupported value: "Sideways": supported values: "Ingress", "Egress"'),
    (policy(podSelector={"matchExpressions": [{"key": "app", "operator": "Near"}]}),
     'spec.podSelector.matchExpressions[0].operator: Unsupported value: "Near"'),
])
def test_bad_policies_are_refused_naming_the_field(body, message):
    found = problems(body)
    assert any(p.startswith(message) for p in found), found


def test_valid_policy_from_the_kubernetes_docs_passes():
    body = policy(
        podSelector={"matchLabels": {"role": "db"}}, policyTypes=["Ingress", "Egress"],
        ingress=[{"from": [{"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}},
                           {"namespaceSelector": {"matchLabels": {"project": "myproject"}}},
                           {"podSelector": {"matchLabels": {"role": "frontend"}}}],
                  "ports": [{"protocol": "TCP", "port": 6379}]}],
        egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}], "ports": [{"protocol": "TCP", "port": 32000,
                                                                          "endPort": 32768}]}])
    assert problems(body) == []


async def test_invalid_policy_is_refused_by_the_server_and_nothing_is_stored(api):
    with pytest.raises(errors.Invalid) as exc:
        await api.create("networkpolicies.networking.k8s.io", ingress_port(port=0, endPort=5))
    assert "spec.ingress[0].ports[0]" in str(exc.value)
    items, _ = await api.list("networkpolicies.networking.k8s.io", "default")
    assert items == []


def slice_body(**fields):
    body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abcde", "namespace": "default"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.42.0.5"], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": 8080}]}
    body.update(fields)
    return body


@pytest.mark.parametrize("fields, message", [
    ({"addressType": "IPv5"}, 'addressType: Unsupported value: "IPv5"'),
    ({"endpoints": [{"addresses": ["not-an-ip"]}]}, 'endpoints[0].addresses[0]: Invalid value: "not-an-ip"'),
    ({"endpoints": [{"addresses": []}]}, "endpoints[0].addresses: Required value"),
    ({"ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]}, 'ports[1].name: Duplicate value: "a"'),
])
def test_bad_endpointslices_are_refused(fields, message):
    found = problems(slice_body(**fields))
    assert any(p.startswith(message) for p in found), found


def test_tables_print_as_kubectl_does():
    created = {"creationTimestamp": "2026-01-01T11:00:00Z"}
    np = {"metadata": {"name": "allow", **created}, "spec": {"podSelector": {"matchLabels": {"app": "web"}}}}
    empty = {"metadata": {"name": "deny", **created}, "spec": {"podSelector": {}}}
    text = printers.render_text(printers.table("NetworkPolicy", [np, empty], now=NOW))
    assert text.splitlines() == ["NAME    POD-SELECTOR   AGE", "allow   app=web        60m",
                                 "deny    <none>         60m"]
    es = {"metadata": {"name": "web-x1", **created}, "addressType": "IPv4",
          "ports": [{"name": "http", "port": 80}, {"name": "b", "port": 81}],
          "endpoints": [{"addresses": [f"10.0.0.{i}"]} for i in range(1, 6)]}
    row = printers.render_text(printers.table("EndpointSlice", [es], now=NOW)).splitlines()
    assert row[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert row[1].split() == ["web-x1", "IPv4", "80,81", "10.0.0.1,10.0.0.2,10.0.0.3", "+", "2", "more...", "60m"]
