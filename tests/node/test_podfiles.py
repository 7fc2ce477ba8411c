"""A pod's resolv.conf by dnsPolicy/dnsConfig, and its hostname."""

from shoal.node import podfiles

CLUSTER = "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.0.0.1\noptions ndots:5\n"


def test_dns_policies():
    assert podfiles.resolv_conf({"spec": {}}, CLUSTER) == CLUSTER
    none = podfiles.resolv_conf({"spec": {"dnsPolicy": "None", "dnsConfig": {
        "nameservers": ["1.2.3.4", "5.6.7.8"], "searches": ["a.b"], "options": [{"name": "ndots", "value": "2"}]}}},
        CLUSTER)
    assert none == "nameserver 1.2.3.4\nnameserver 5.6.7.8\nsearch a.b\noptions ndots:2\n"
    host = podfiles.resolv_conf({"spec": {"dnsPolicy": "Default"}}, CLUSTER)
    assert host == open("/etc/resolv.conf").read()
    assert podfiles.resolv_conf({"spec": {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}},
                                CLUSTER) == CLUSTER


def test_hostname_prefers_spec_hostname():
    assert podfiles.hostname({"metadata": {"name": "web-1"}, "spec": {}}) == "web-1"
    assert podfiles.hostname({"metadata": {"name": "web-1"}, "spec": {"hostname": "db"}}) == "db"
