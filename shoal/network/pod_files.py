"""The files a pod's containers see as /etc/resolv.conf and /etc/hosts (pure).

resolv.conf follows Kubernetes' ClusterFirst policy: the cluster DNS server on the
bridge's gateway address, the search path `<ns>.svc.<domain> svc.<domain> <domain>` and
`ndots:5`, so `web` resolves as `web.<ns>.svc.<domain>` first and `web.other` as the
service `web` of namespace `other`. Pods need the DNS server on port 53: resolv.conf has
no port syntax.
"""

from __future__ import annotations


def resolv_conf(*, namespace: str, cluster_domain: str, nameserver: str) -> str:
    search = f"{namespace}.svc.{cluster_domain} svc.{cluster_domain} {cluster_domain}"
    return f"search {search}\nnameserver {nameserver}\noptions ndots:5\n"


def hosts_file(*, pod_name: str, ip: str) -> str:
    return (
        "# Kubernetes-managed hosts file (written by shoal).\n"
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\n"
        "fe00::0\tip6-mcastprefix\n"
        "fe00::1\tip6-allnodes\n"
        "fe00::2\tip6-allrouters\n"
        f"{ip}\t{pod_name}\n"
    )
