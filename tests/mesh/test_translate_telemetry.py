"""Pure translation of the telemetry pieces: access loggers on every inbound/outbound
HTTP connection manager and tcp_proxy, the bootstrap's metrics-service clusters, and
the 15090 listener that appends Istio's series (no Envoy needed)."""

from __future__ import annotations

import dataclasses

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.resource_monitors.downstream_connections.v3 import (  # noqa: F401
    downstream_connections_pb2,
)
from google.protobuf import json_format

from shoal.mesh import bootstrap
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import PODS
from shoal.mesh.telemetry.records import Record
from shoal.mesh.translate import model, protos, telemetry, translate
from shoal.mesh.translate.model import ProxyIdentity
from tests.mesh.fixtures import cluster

OTEL = "envoy.access_loggers.open_telemetry"
PROXY = ProxyIdentity("web-1", "shop", "web", "10.211.0.3")


def listeners(pod: str = "web-1") -> dict[str, dict]:
    state = cluster()
    identity = model.proxy_identity(state.get(PODS, "default", pod), state)
    res = translate(state, identity, MeshConfig()).by_type()
    return {name: protos.to_dict(m) for name, m in res[protos.LISTENER].items()}


def network_filters(listener: dict) -> list[dict]:
    chains = listener["filter_chains"] + [listener["default_filter_chain"]]
    return [f for chain in chains for f in chain["filters"]]


def logger_of(config: dict) -> dict:
    [log] = config["access_log"]
    assert log["name"] == OTEL
    return log["typed_config"]


@pytest.mark.parametrize("listener, side", [("virtualInbound", "inbound"),
                                            ("virtualOutbound", "outbound")])
def test_every_hcm_and_tcp_proxy_logs_to_the_metrics_service(listener, side):
    filters = network_filters(listeners()[listener])
    kinds = {f["name"] for f in filters}
    assert kinds == {"envoy.filters.network.http_connection_manager",
                     "envoy.filters.network.tcp_proxy"}
    for f in filters:
        config = f["typed_config"]
        common = logger_of(config)["common_config"]
        assert common["log_name"] == side
        assert common["grpc_service"]["envoy_grpc"]["cluster_name"] == telemetry.TELEMETRY_CLUSTER
        assert common["transport_api_version"] == "V3"
        if f["name"].endswith("tcp_proxy"):
            # an opened connection shows before it closes; bytes while it lasts
            assert config["access_log_options"]["flush_access_log_on_connected"] is True
            assert config["access_log_options"]["access_log_flush_interval"] == "5s"


def test_logged_fields_are_exactly_what_the_metrics_service_reads_in_its_order():
    config = logger_of(network_filters(listeners()["virtualInbound"])[0]["typed_config"])
    operators = config["body"]["string_value"].split(telemetry.FIELD_SEPARATOR)
    sent = dict(zip((name for name, _ in telemetry.ACCESS_LOG_FIELDS), operators))
    assert len(operators) == len(telemetry.ACCESS_LOG_FIELDS)
    read = [f.name for f in dataclasses.fields(Record)][2:]  # after side and node
    assert list(sent) == read
    assert sent["response_flags"] == "%RESPONSE_FLAGS%"
    assert sent["downstream_peer"] == "%DOWNSTREAM_PEER_URI_SAN%"
    assert sent["upstream_peer"] == "%UPSTREAM_PEER_URI_SAN%"


def test_access_logs_refuse_an_unknown_side():
    with pytest.raises(ValueError, match="side 'sideways'"):
        telemetry.access_logs("sideways")


def test_bootstrap_has_the_metrics_service_next_to_the_xds_socket(tmp_path):
    config = bootstrap.build_bootstrap(PROXY, tmp_path / "xds.sock")
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}

    def pipe(name):
        return clusters[name]["load_assignment"]["endpoints"][0]["lb_endpoints"][0][
            "endpoint"]["address"]["pipe"]["path"]
    assert pipe(telemetry.TELEMETRY_CLUSTER) == str(tmp_path / "als.sock")
    assert pipe(telemetry.STATS_CLUSTER) == str(tmp_path / "stats.sock")
    assert "typed_extension_protocol_options" in clusters[telemetry.TELEMETRY_CLUSTER]  # gRPC: h2
    assert "typed_extension_protocol_options" not in clusters[telemetry.STATS_CLUSTER]
    # the whole bootstrap, Lua and OpenTelemetry configs included, is a valid Bootstrap
    json_format.ParseDict(config, bootstrap_pb2.Bootstrap())


def test_prometheus_listener_appends_the_proxys_series_after_envoys(tmp_path):
    config = bootstrap.build_bootstrap(PROXY, tmp_path / "xds.sock")
    [listener] = [l for l in config["static_resources"]["listeners"]
                  if l["address"]["socket_address"]["port_value"] == 15090]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    lua, router = hcm["http_filters"]
    assert (lua["name"], router["name"]) == ("envoy.filters.http.lua", "envoy.filters.http.router")
    code = lua["typed_config"]["default_source_code"]["inline_string"]
    assert f'["{telemetry.NODE_HEADER}"] = "{PROXY.node_id}"' in code
    assert f'httpCall("{telemetry.STATS_CLUSTER}"' in code
    [route] = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert route["match"] == {"path": "/stats/prometheus"}
    assert route["route"]["cluster"] == "prometheus_stats"  # Envoy's own stats first


def test_merge_script_refuses_a_node_id_that_would_break_out_of_its_string():
    with pytest.raises(ValueError, match="node id"):
        telemetry.prometheus_filters('x"; os.exit() --')
