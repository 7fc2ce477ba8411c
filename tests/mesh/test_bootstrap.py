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


def test_real_envoy_accepts_every_translated_resource_shape(tmp_path):
    """TCP, gRPC (HTTP/2), PERMISSIVE with port-level DISABLE, REGISTRY_ONLY: the
    translated listeners, clusters and routes loaded statically by Envoy's validator."""
    from shoal.mesh.meshconfig import REGISTRY_ONLY, MeshConfig
    from shoal.mesh.source import PODS
    from shoal.mesh.translate import model, protos, translate
    from tests.mesh.fixtures import cluster, peer_auth

    state = cluster(peer_auth("web", "default", "PERMISSIVE", selector={"app": "web"},
                              ports={8080: "DISABLE"}))
    for mesh in (MeshConfig(), MeshConfig(outbound_traffic_policy=REGISTRY_ONLY)):
        identity = model.proxy_identity(state.get(PODS, "default", "web-1"), state)
        res = translate(state, identity, mesh)
        config = bootstrap.build_bootstrap(identity, tmp_path / "xds.sock")
        static = config["static_resources"]
        static["clusters"] += [protos.to_dict(c) for c in res.clusters]
        # routes are inlined so the validator sees them too
        routes = {r.name: protos.to_dict(r) for r in res.routes}
        for listener in res.listeners:
            body = protos.to_dict(listener)
            for chain in body.get("filter_chains", []):
                for f in chain["filters"]:
                    typed = f["typed_config"]
                    if "rds" in typed:
                        typed["route_config"] = routes[typed.pop("rds")["route_config_name"]]
            static["listeners"].append(body)
        path = tmp_path / "static.json"
        path.write_text(bootstrap.bootstrap_json(config))
        result = subprocess.run([*bootstrap.envoy_command(path, concurrency=1), "--mode", "validate"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
