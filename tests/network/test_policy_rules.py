"""Pure rendering of NetworkPolicy filter rules: what the kernel will be told."""

from __future__ import annotations

from shoal.config import Settings
from shoal.network import Allow, NetworkPolicyRules, Peer, PodPolicy, PortMatch, host

SETTINGS = Settings(chain_prefix="SHOALT1234", pod_cidr="10.201.1.0/24", service_cidr="10.202.1.0/24")


def chain_rules(text: str, chain: str) -> list[str]:
    return [line[len(f"-A {chain} "):] for line in text.splitlines() if line.startswith(f"-A {chain} ")]


def chains(text: str) -> list[str]:
    return [line[1:].split()[0] for line in text.splitlines() if line.startswith(":")]


def test_no_policies_leave_only_the_conntrack_rule_and_delete_stale_chains():
    text = NetworkPolicyRules(SETTINGS).render([], existing_chains=[
        "SHOALT1234-NPI-OLD", "SHOALT1234-NPB-OLD", "SHOALT1234-FORWARD", "OTHER-NPI-X"])
    assert chains(text) == ["SHOALT1234-POLICY", "SHOALT1234-NPB-OLD", "SHOALT1234-NPI-OLD"]
    assert "-X SHOALT1234-NPI-OLD" in text and "-X SHOALT1234-NPB-OLD" in text
    assert "-X SHOALT1234-FORWARD" not in text and "OTHER" not in text
    assert chain_rules(text, "SHOALT1234-POLICY") == [
        '-m conntrack --ctstate ESTABLISHED --ctdir REPLY -m comment --comment "replies of allowed connections" '
        '-j RETURN',
        '-m conntrack --ctstate RELATED -m comment --comment "errors about allowed connections" -j RETURN']


def test_default_deny_ingress_rejects_after_self_and_allowed_peers():
    web = PodPolicy("default/web", "10.201.1.5", ingress=(
        Allow((Peer("10.201.1.7/32"),), (PortMatch("TCP", 8080),), "default/allow ingress[0]"),))
    text = NetworkPolicyRules(SETTINGS).render([web])
    entry = chain_rules(text, "SHOALT1234-POLICY")[2:]
    assert entry[0].startswith("-d 10.201.1.5/32 ") and "-j SHOALT1234-NPI-" in entry[0]
    pod_chain = entry[0].split("-j ")[-1]
    body = chain_rules(text, pod_chain)
    assert body[0] == "-j MARK --set-xmark 0x0/0x20000"
    assert body[1].startswith("-s 10.201.1.5/32 ") and body[1].endswith("-j RETURN")
    assert body[2].startswith("-s 10.201.1.7/32 -p tcp -m tcp --dport 8080 ") and body[2].endswith("-j RETURN")
    assert body[3].startswith("-p tcp ") and body[3].endswith("REJECT --reject-with tcp-reset")
    assert body[4].endswith("REJECT --reject-with icmp-port-unreachable")
    assert len(body) == 5


def test_egress_checked_before_ingress_and_ranges_protocols_any_port():
    client = PodPolicy("a/client", "10.201.1.9", egress=(
        Allow(None, (PortMatch("UDP", 53), PortMatch("TCP", 8000, 8100), PortMatch("SCTP")), "a/p egress[0]"),
        Allow((Peer("10.201.1.0/28"),), None, "a/p egress[1]"),
    ))
    server = PodPolicy("b/server", "10.201.1.5", ingress=())
    text = NetworkPolicyRules(SETTINGS).render([server, client])
    entry = chain_rules(text, "SHOALT1234-POLICY")[1:]
    assert entry[1].startswith("-s 10.201.1.9/32 ") and "-NPE-" in entry[1]
    assert entry[2].startswith("-d 10.201.1.5/32 ") and "-NPI-" in entry[2]
    body = chain_rules(text, entry[1].split("-j ")[-1])
    assert body[2].startswith("-p udp -m udp --dport 53 ")
    assert body[3].startswith("-p tcp -m tcp --dport 8000:8100 ")
    assert body[4].startswith("-p sctp -m comment")
    assert body[5].startswith("-d 10.201.1.0/28 -m comment")
    # an isolated pod with no allows: only itself, then reject
    deny = chain_rules(text, entry[2].split("-j ")[-1])
    assert len(deny) == 4 and "REJECT" in deny[2]


def test_ip_block_with_except_uses_a_shared_block_chain_and_the_mark():
    block = Peer("10.201.1.0/24", ("10.201.1.16/28", "10.201.1.5/32"))
    pods = [PodPolicy(f"d/p{i}", f"10.201.1.{40 + i}", egress=(Allow((block,), (PortMatch("TCP", 80),)),))
            for i in range(2)]
    text = NetworkPolicyRules(SETTINGS).render(pods)
    blocks = [c for c in chains(text) if "-NPB-" in c]
    assert len(blocks) == 1
    assert chain_rules(text, blocks[0]) == [
        "-d 10.201.1.16/28 -j RETURN", "-d 10.201.1.5/32 -j RETURN",
        "-d 10.201.1.0/24 -j MARK --set-xmark 0x20000/0x20000"]
    pod_chain = chain_rules(text, "SHOALT1234-POLICY")[2].split("-j ")[-1]
    body = chain_rules(text, pod_chain)
    assert body[2].startswith("-p tcp -m tcp --dport 80 ") and body[2].endswith(f"-j {blocks[0]}")
    assert body[3] == "-m mark --mark 0x20000/0x20000 -j RETURN"


def test_host_sends_forwarded_packets_and_dns_to_the_policy_chain_before_accepting():
    settings = Settings(chain_prefix="SHOALT1234", pod_cidr="10.201.1.0/24", service_cidr="10.202.1.0/24",
                        bridge="shoaltest", dns_port=53)
    nat, filt = host.render_base_rules(settings, existing_nat=set(), existing_filter=set())
    assert "SHOALT1234-POLICY" in filt.chains and "SHOALT1234-INPUT" in filt.chains
    forward = [r for r in filt.rules if r.startswith("-A SHOALT1234-FORWARD")]
    jump = next(i for i, r in enumerate(forward) if r.endswith("-j SHOALT1234-POLICY"))
    accept = next(i for i, r in enumerate(forward) if r.endswith("-j ACCEPT"))
    assert "REJECT" in forward[0] and jump < accept
    dns = [r for r in filt.rules if r.startswith("-A SHOALT1234-INPUT")]
    assert len(dns) == 2 and all("-d 10.201.1.1/32" in r and "--dport 53" in r for r in dns)
    # re-running setup never empties the policy chain
    _, again = host.render_base_rules(settings, existing_nat=set(), existing_filter={"SHOALT1234-POLICY"})
    assert "SHOALT1234-POLICY" not in again.chains
