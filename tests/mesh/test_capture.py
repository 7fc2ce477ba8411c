"""Capture rules: rendered text, annotations, and installed in a real netns."""

from __future__ import annotations

import secrets

import pytest

from shoal.mesh import capture
from shoal.mesh.errors import CaptureError
from tests.mesh.harness import run


def test_rules_follow_istio_order():
    rules = capture.render_capture_rules().splitlines()
    out = [r for r in rules if r.startswith("-A ISTIO_OUTPUT")]
    assert out[0] == "-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN"
    assert "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN" in out
    assert out.index("-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN") < out.index(
        "-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
    assert out[-1] == "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"
    assert "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in rules
    assert "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in rules
    assert "-A ISTIO_INBOUND -p tcp -m tcp --dport 15000:15090 -j RETURN" in rules


def test_annotations_become_exclusions():
    pod = {"metadata": {"annotations": {
        capture.EXCLUDE_OUTBOUND_PORTS: "5432, 6379",
        capture.EXCLUDE_INBOUND_PORTS: "22",
        capture.EXCLUDE_OUTBOUND_IP_RANGES: "169.254.169.254/32,10.0.0.0/8"}}}
    rules = capture.render_capture_rules(capture.capture_options_from_pod(pod))
    assert "-A ISTIO_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN" in rules
    assert "-A ISTIO_OUTPUT -p tcp -m tcp --dport 6379 -j RETURN" in rules
    assert "-A ISTIO_INBOUND -p tcp -m tcp --dport 22 -j RETURN" in rules
    assert "-A ISTIO_OUTPUT -d 169.254.169.254/32 -j RETURN" in rules
    with pytest.raises(CaptureError, match="excludeOutboundPorts.*'http'"):
        capture.capture_options_from_pod(
            {"metadata": {"annotations": {capture.EXCLUDE_OUTBOUND_PORTS: "http"}}})


@pytest.fixture
async def netns():
    name = f"shoal-mt-{secrets.token_hex(3)}-cap"
    await run("ip", "netns", "add", name)
    try:
        yield name
    finally:
        await run("ip", "netns", "del", name, check=False)


async def test_apply_capture_installs_rules_idempotently(netns):
    rules = capture.render_capture_rules(capture.CaptureOptions(exclude_outbound_ports=(5432,)))
    await capture.apply_capture(netns, rules)
    await capture.apply_capture(netns, rules)
    _, listing = await run("ip", "netns", "exec", netns, "iptables", "-t", "nat", "-S")
    assert listing.count("-A OUTPUT -p tcp -j ISTIO_OUTPUT") == 1
    assert "--dport 5432 -j RETURN" in listing
    with pytest.raises(CaptureError, match=netns):
        await capture.apply_capture(netns, "*nat\n-A NOPE -j RETURN\nCOMMIT\n")
