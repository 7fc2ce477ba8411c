"""NetworkPolicy, ExternalName and EndpointSlices with a real daemon and real pods, driven
by kubectl: default-deny ingress, an allow rule that re-opens exactly one port for one
podSelector, namespaceSelector across namespaces, egress default deny (DNS included)
re-opened by an ipBlock, a label change applied at once, meshed pods protected with
their sidecar calls working where allowed, policies deleted restoring traffic, and
nothing left in iptables after `shoal down`. Traffic only between the pods made here
(and the daemon's DNS on its own bridge address)."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess

import pytest
from dnslib import QTYPE, DNSRecord

from tests.daemon_harness import ShoalInstance, wait_for

pytestmark = pytest.mark.slow

SERVE = ("mkdir -p /www && echo ok > /www/index.html && httpd -p 9090 -h /www && "
         "exec httpd -f -p 8080 -h /www")

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: np}
---
apiVersion: v1
kind: Namespace
metadata: {name: far, labels: {team: far}}
---
apiVersion: v1
kind: Namespace
metadata: {name: mesh, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: np}
spec:
  selector: {app: server}
  ports: [{name: http, port: 80, targetPort: http}, {name: alt, port: 81, targetPort: 9090}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: np}
spec: {type: ExternalName, externalName: server.np.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: msrv, namespace: mesh}
spec:
  selector: {app: msrv}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: http-alt, port: 81, targetPort: 9090}]
""" + "".join(f"""
---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}, labels: {{app: {name}}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", {json.dumps(SERVE)}]
    ports: [{{name: http, containerPort: 8080}}, {{name: alt, containerPort: 9090}}]
    readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
""" for name, ns in (("server", "np"), ("client", "np"), ("other", "np"), ("remote", "far"),
                     ("msrv", "mesh"), ("mcli", "mesh")))

DENY_INGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress, namespace: np}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""

ALLOW_CLIENT = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-client-http, namespace: np}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{protocol: TCP, port: http}]
"""

ALLOW_FAR = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-far-alt, namespace: np}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: far}}}]
    ports: [{port: 9000, endPort: 9100}]
"""

DENY_EGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress, namespace: far}
spec:
  podSelector: {}
  policyTypes: [Egress]
"""

MESH_POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: msrv-http-only, namespace: mesh}
spec:
  podSelector: {matchLabels: {app: msrv}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: mcli}}}]
    ports: [{port: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: mcli-egress, namespace: mesh}
spec:
  podSelector: {matchLabels: {app: mcli}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: msrv}}}]
  - to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
      podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
"""


def allow_egress_block(cidr: str, excluded: str) -> str:
    return f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: allow-pod-range, namespace: far}}
spec:
  podSelector: {{matchLabels: {{app: remote}}}}
  policyTypes: [Egress]
  egress:
  - to: [{{ipBlock: {{cidr: {cidr}, except: [{excluded}]}}}}]
"""


@pytest.fixture(scope="module")
def shoal(tmp_path_factory):
    instance = ShoalInstance(tmp_path_factory.mktemp("netpol"))
    instance.shoal("image", "bootstrap", "busybox", "--busybox")
    instance.start()
    try:
        instance.kubectl("apply", "-f", "-", input=APP)
        for ns in ("np", "far", "mesh"):
            instance.kubectl("wait", "--for=condition=Ready", "pod", "--all", "-n", ns, "--timeout=90s",
                             timeout=100)
        yield instance
    finally:
        instance.stop()


def ip_of(shoal: ShoalInstance, ns: str, pod: str) -> str:
    return json.loads(shoal.kubectl("get", "pod", pod, "-n", ns, "-o", "json").stdout)["status"]["podIP"]


def reaches(shoal: ShoalInstance, ns: str, pod: str, url: str) -> bool:
    """Whether `wget url` from the pod's main container gets the page."""
    result = shoal.kubectl("exec", "-n", ns, pod, "-c", "main", "--", "timeout", "4", "wget", "-qO-", url,
                           check=False, timeout=20)
    return result.returncode == 0 and result.stdout.strip() == "ok"


def url(shoal: ShoalInstance, port: int, ns: str = "np", pod: str = "server") -> str:
    return f"http://{ip_of(shoal, ns, pod)}:{port}/"


def settle(predicate, what: str):
    return wait_for(predicate, 10, 0.2, what=what)


def test_without_policies_every_pod_reaches_every_port(shoal):
    for ns, pod in (("np", "client"), ("np", "other"), ("far", "remote")):
        for port in (8080, 9090):
            assert reaches(shoal, ns, pod, url(shoal, port)), (ns, pod, port)


def test_invalid_policy_is_refused_with_the_field_path(shoal):
    bad = ALLOW_CLIENT.replace("port: http}", "port: 100, endPort: 90}").replace("allow-client-http", "bad")
    result = shoal.kubectl("apply", "-f", "-", input=bad, check=False)
    assert result.returncode != 0
    assert "spec.ingress[0].ports[0].endPort: Invalid value: 100: must be greater than or equal to `port`" \
        in result.stderr
    assert "bad" not in shoal.kubectl("get", "networkpolicies", "-n", "np").stdout


def test_default_deny_ingress_blocks_and_one_allow_rule_reopens_exactly_one_port(shoal):
    shoal.kubectl("apply", "-f", "-", input=DENY_INGRESS)
    settle(lambda: not reaches(shoal, "np", "client", url(shoal, 8080)), "deny-all to block client -> server")
    assert not reaches(shoal, "np", "other", url(shoal, 9090))
    shoal.kubectl("apply", "-f", "-", input=ALLOW_CLIENT)
    settle(lambda: reaches(shoal, "np", "client", url(shoal, 8080)), "allow rule to re-open http")
    assert not reaches(shoal, "np", "client", url(shoal, 9090))    # another port stays blocked
    assert not reaches(shoal, "np", "other", url(shoal, 8080))     # another pod stays blocked
    # the same through the Service's ClusterIP: policies see the endpoint after DNAT
    assert reaches(shoal, "np", "client", "http://server.np.svc.cluster.local/")
    assert not reaches(shoal, "np", "client", "http://server.np.svc.cluster.local:81/")
    listed = shoal.kubectl("get", "netpol", "-n", "np").stdout.split()
    assert listed[:3] == ["NAME", "POD-SELECTOR", "AGE"]
    assert "allow-client-http" in listed and "app=server" in listed and "<none>" in listed


def test_a_label_change_is_applied_at_once(shoal):
    shoal.kubectl("label", "pod", "other", "-n", "np", "app=client", "--overwrite")
    try:
        settle(lambda: reaches(shoal, "np", "other", url(shoal, 8080)), "relabelled pod to be allowed")
    finally:
        shoal.kubectl("label", "pod", "other", "-n", "np", "app=other", "--overwrite")
    settle(lambda: not reaches(shoal, "np", "other", url(shoal, 8080)), "pod blocked again")


def test_namespace_selector_admits_another_namespace_on_a_port_range(shoal):
    assert not reaches(shoal, "far", "remote", url(shoal, 9090))
    shoal.kubectl("apply", "-f", "-", input=ALLOW_FAR)
    settle(lambda: reaches(shoal, "far", "remote", url(shoal, 9090)), "namespaceSelector to admit far")
    assert not reaches(shoal, "far", "remote", url(shoal, 8080))   # 8080 is outside 9000-9100
    assert not reaches(shoal, "np", "client", url(shoal, 9090))    # np is not labelled team=far


def nslookup(shoal: ShoalInstance, ns: str, pod: str, name: str) -> subprocess.CompletedProcess[str]:
    return shoal.kubectl("exec", "-n", ns, pod, "-c", "main", "--", "timeout", "4", "nslookup", name,
                         check=False, timeout=20)


def test_egress_default_deny_blocks_dns_too_and_an_ip_block_reopens(shoal):
    server_ip = json.loads(shoal.kubectl("get", "svc", "server", "-n", "np", "-o", "json").stdout)["spec"]["clusterIP"]
    assert nslookup(shoal, "far", "remote", "server.np.svc.cluster.local").returncode == 0
    shoal.kubectl("apply", "-f", "-", input=DENY_EGRESS)
    settle(lambda: not reaches(shoal, "far", "remote", url(shoal, 9090)), "egress deny to block remote")
    lookup = nslookup(shoal, "far", "remote", "server.np.svc.cluster.local")
    assert lookup.returncode != 0 and server_ip not in lookup.stdout       # no implicit DNS
    pod_cidr = shoal.env["SHOAL_POD_CIDR"]
    other_ip = ip_of(shoal, "np", "other")
    shoal.kubectl("apply", "-f", "-", input=allow_egress_block(pod_cidr, f"{other_ip}/32"))
    settle(lambda: reaches(shoal, "far", "remote", url(shoal, 9090)), "ipBlock to re-open egress")
    assert not reaches(shoal, "far", "remote", url(shoal, 9090, pod="other"))  # the except
    assert server_ip in nslookup(shoal, "far", "remote", "server.np.svc.cluster.local").stdout


def test_meshed_pods_are_protected_and_allowed_mesh_calls_work(shoal):
    srv = "http://msrv.mesh.svc.cluster.local"
    assert reaches(shoal, "mesh", "mcli", f"{srv}/") and reaches(shoal, "mesh", "mcli", f"{srv}:81/")
    shoal.kubectl("apply", "-f", "-", input=MESH_POLICIES)
    settle(lambda: not reaches(shoal, "mesh", "mcli", f"{srv}:81/"), "9090 of the meshed pod to be blocked")
    assert reaches(shoal, "mesh", "mcli", f"{srv}/")    # through both sidecars, mTLS, allowed port
    # mcli may only send to msrv and to the cluster DNS (Kubernetes' usual kube-dns rule),
    # yet its sidecar keeps taking config (xDS is a Unix socket): a new Service reaches it
    shoal.kubectl("create", "service", "clusterip", "late", "-n", "mesh", "--tcp=82:8080")
    wait_for(lambda: "late.mesh.svc.cluster.local" in shoal.shoal(
        "mesh", "proxy-config", "clusters", "mcli", "-n", "mesh", check=False).stdout, 15,
        what="the new Service in mcli's sidecar config")
    # an unmeshed client is refused at the network before any sidecar sees it
    msrv_ip = ip_of(shoal, "mesh", "msrv")
    assert not reaches(shoal, "np", "client", f"http://{msrv_ip}:9090/")


def test_deleting_the_policies_restores_traffic(shoal):
    for ns in ("np", "far", "mesh"):
        shoal.kubectl("delete", "networkpolicies", "--all", "-n", ns)
    settle(lambda: reaches(shoal, "np", "other", url(shoal, 9090)), "traffic restored")
    assert reaches(shoal, "np", "client", url(shoal, 9090))
    assert reaches(shoal, "far", "remote", url(shoal, 8080))
    assert reaches(shoal, "mesh", "mcli", "http://msrv.mesh.svc.cluster.local:81/")
    dump = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True).stdout
    prefix = shoal.env["SHOAL_CHAIN_PREFIX"]
    assert not [line for line in dump.splitlines() if line.startswith(f":{prefix}-NP")]


def test_external_name_is_a_cname_from_the_cluster_dns(shoal):
    gateway = str(ipaddress.ip_network(shoal.env["SHOAL_POD_CIDR"]).network_address + 1)
    query = DNSRecord.question("ext.np.svc.cluster.local", "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(query.pack(), (gateway, 53))
        reply = DNSRecord.parse(sock.recv(4096))
    records = [(QTYPE[rr.rtype], str(rr.rdata)) for rr in reply.rr]
    cluster_ip = json.loads(shoal.kubectl("get", "svc", "server", "-n", "np", "-o", "json").stdout)["spec"]["clusterIP"]
    assert records == [("CNAME", "server.np.svc.cluster.local."), ("A", cluster_ip)]
    ext = json.loads(shoal.kubectl("get", "svc", "ext", "-n", "np", "-o", "json").stdout)["spec"]
    assert "clusterIP" not in ext or not ext["clusterIP"]
    assert reaches(shoal, "np", "client", "http://ext.np.svc.cluster.local/")   # the pod's resolver follows it


def test_endpointslices_are_listed_by_kubectl(shoal):
    out = shoal.kubectl("get", "endpointslices", "-n", "np", "-l", "kubernetes.io/service-name=server").stdout
    header, row = out.splitlines()
    assert header.split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    name, kind, ports, endpoints, _ = row.split()
    assert name.startswith("server-") and kind == "IPv4"
    assert sorted(ports.split(",")) == ["8080", "9090"] and endpoints == ip_of(shoal, "np", "server")
    body = json.loads(shoal.kubectl("get", "endpointslice", name, "-n", "np", "-o", "json").stdout)
    assert body["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    assert body["endpoints"][0]["conditions"] == {"ready": True, "serving": True, "terminating": False}


def test_shoal_down_leaves_no_iptables_rules(shoal):
    shoal.stop()
    prefix = shoal.env["SHOAL_CHAIN_PREFIX"]
    for table in ("filter", "nat"):
        dump = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True).stdout
        assert [line for line in dump.splitlines() if prefix in line] == [], table
