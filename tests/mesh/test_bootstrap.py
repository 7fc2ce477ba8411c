"""The sidecar bootstrap: Istio-style node id, ADS over the Unix socket, admin on
loopback, static readiness/metrics listeners; accepted by the real Envoy."""

from __future__ import annotations

import subprocess

from shoal.mesh import bootstrap
from shoal.mesh.translate.model import ProxyIdentity

PROXY = ProxyIdentity("web-1", "shop", "web", "10.211.0.3", labels=(("app", "web"),))


def test_bootstrap_shape(tmp_path):
    config = bootstrap.build_bootstrap(PROXY, tmp_path / "xds.sock")
    assert config["node"]["id"] == "sidecar~10.211.0.3~web-1.shop~shop.svc.cluster.local"
    assert config["node"]["metadata"]["SERVICE_ACCOUNT"] == "web"
    assert config["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 15000}
    xds = config["static_resources"]["clusters"][0]
    assert xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "pipe": {"path": str(tmp_path / "xds.sock")}}
    ports = {l["address"]["socket_address"]["port_value"] for l in config["static_resources"]["listeners"]}
    assert ports == {15021, 15090}
    assert config["dynamic_resources"]["ads_config"]["api_type"] == "GRPC"


def test_real_envoy_accepts_the_bootstrap(tmp_path):
    path = tmp_path / "bootstrap.json"
    path.write_text(bootstrap.bootstrap_json(bootstrap.build_bootstrap(PROXY, tmp_path / "xds.sock")))
    command = bootstrap.envoy_command(path, concurrency=1)
    assert "--disable-hot-restart" in command
    result = subprocess.run([*command, "--mode", "validate"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "OK" in result.stdout + result.stderr
