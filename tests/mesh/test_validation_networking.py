"""VirtualService, DestinationRule and EnvoyFilter validation through the API's own path.

Each object goes through `shoal.api.validation.validate` with the mesh kinds registered
(structure from the schema, then Istio's semantic rules), as the API server runs it on
create and update. Istio's documented examples must pass unchanged; each rule must
reject with the exact field path.
"""

from __future__ import annotations

import copy
import pathlib

import pytest
import yaml

from shoal.api import kinds as api_kinds
from shoal.api import validation
from shoal.api.errors import Invalid
from shoal.mesh import kinds
from shoal.mesh.validation import common

EXAMPLES = list(yaml.safe_load_all(
    (pathlib.Path(__file__).parent / "data" / "istio_networking_examples.yaml").read_text()))


@pytest.fixture(autouse=True)
def registry():
    """The mesh kinds for one test only: other modules must see the API as it was."""
    saved = dict(api_kinds._registry)
    kinds.register_kinds()
    try:
        yield
    finally:
        api_kinds._registry.clear()
        api_kinds._registry.update(saved)
        api_kinds._reindex()


def _with_namespace(obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    obj["metadata"].setdefault("namespace", "default")
    return obj


def messages(obj: dict) -> list[str]:
    """The field errors the API would answer with (empty: accepted)."""
    try:
        validation.validate(_with_namespace(obj))
    except Invalid as exc:
        return [str(e) for e in exc.errors]
    return []


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e['kind']}-{e['metadata']['name']}")
def test_istio_documented_examples_are_accepted_unchanged(example):
    assert messages(example) == []


def vs(spec: dict, version: str = "v1") -> dict:
    return {"apiVersion": f"networking.istio.io/{version}", "kind": "VirtualService",
            "metadata": {"name": "reviews"}, "spec": spec}


def dr(spec: dict) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "reviews"}, "spec": {"host": "reviews", **spec}}


def ef(spec: dict) -> dict:
    return {"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
            "metadata": {"name": "rl"}, "spec": spec}


def route(*destinations: dict, **extra) -> dict:
    return {"route": list(destinations), **extra}


def dest(host: str = "reviews", subset: str | None = None, weight: int | None = None) -> dict:
    d: dict = {"destination": {"host": host}}
    if subset:
        d["destination"]["subset"] = subset
    if weight is not None:
        d["weight"] = weight
    return d


def http(*routes: dict, hosts=("reviews",), **spec) -> dict:
    return vs({"hosts": list(hosts), "http": list(routes), **spec})


VS_CASES = [
    # structure: unknown fields and wrong types, at any depth
    (http(route(dest(), weigth=3)), "spec.http[0].weigth: Unknown field"),
    (http(route({"destination": {"host": "reviews"}, "weight": "80"})),
     'spec.http[0].route[0].weight: Invalid value: "80": expected integer'),
    (vs({"hosts": "reviews", "http": [route(dest())]}),
     'spec.hosts: Invalid value: "reviews": expected array'),
    # weights
    (http(route(dest(subset="v1", weight=80), dest(subset="v2", weight=120))),
     "spec.http[0].route[1].weight: Invalid value: 120: must be between 0 and 100, inclusive"),
    (http(route(dest(subset="v1", weight=-1), dest(subset="v2", weight=100))),
     "spec.http[0].route[0].weight: Invalid value: -1: must be between 0 and 100, inclusive"),
    (http(route(dest(subset="v1", weight=80), dest(subset="v2", weight=10))),
     "spec.http[0].route: Invalid value: 90: total destination weight must be 100"),
    (http(route(dest(subset="v1"), dest(subset="v2"))),
     "spec.http[0].route: Invalid value: 0: total destination weight must be 100"),
    (http(route(dest(weight=50))),
     "spec.http[0].route[0].weight: Invalid value: 50: a single destination takes all traffic"),
    # destinations
    (http(route({"destination": {"subset": "v1"}})),
     "spec.http[0].route[0].destination.host: Required value"),
    (http(route({"weight": 100})), "spec.http[0].route[0].destination: Required value"),
    (http(route(dest(subset="V_1"))),
     'spec.http[0].route[0].destination.subset: Invalid value: "V_1": a lowercase RFC 1123 label'),
    (http(route({"destination": {"host": "reviews", "port": {"number": 70000}}})),
     "spec.http[0].route[0].destination.port.number: Invalid value: 70000: must be between 1 and 65535"),
    (http(route(dest(host="rev*iews"))),
     'spec.http[0].route[0].destination.host: Invalid value: "rev*iews": wildcards are only allowed as the leading part'),
    # hosts
    (vs({"hosts": ["re*views"], "http": [route(dest())]}),
     'spec.hosts[0]: Invalid value: "re*views": wildcards are only allowed as the leading part'),
    (vs({"hosts": ["bad_host!"], "http": [route(dest())]}),
     'spec.hosts[0]: Invalid value: "bad_host!": must be a DNS name'),
    (vs({"hosts": ["*"], "http": [route(dest())]}),
     'spec.hosts[0]: Invalid value: "*": wildcard host "*" is not allowed for virtual services bound to the mesh gateway'),
    (vs({"hosts": ["reviews", "reviews"], "http": [route(dest())]}),
     'spec.hosts[1]: Duplicate value: "reviews"'),
    (vs({"hosts": ["reviews"]}), "spec.http: Required value: a virtual service needs at least one"),
    # actions
    (http(route(dest(), redirect={"uri": "/x"})),
     "spec.http[0].redirect: Forbidden: an http route may have only one of route, redirect, directResponse or delegate (it has route and redirect)"),
    (http({"redirect": {"uri": "/x"}, "directResponse": {"status": 200}}),
     "spec.http[0].directResponse: Forbidden: an http route may have only one of"),
    (http({"match": [{"uri": {"prefix": "/"}}]}),
     "spec.http[0].route: Required value: an http route needs one of route, redirect, directResponse or delegate"),
    (http({"redirect": {"uri": "/x"}, "rewrite": {"uri": "/y"}}),
     "spec.http[0].rewrite: Forbidden: rewrite cannot be used with redirect"),
    (http({"redirect": {"uri": "/x", "redirectCode": 200}}),
     "spec.http[0].redirect.redirectCode: Invalid value: 200: must be between 300 and 399"),
    (http({"redirect": {"redirectCode": 301}}),
     "spec.http[0].redirect: Required value: a redirect needs uri, authority"),
    (http({"redirect": {"uri": "/x", "derivePort": "FROM_NOWHERE"}}),
     'spec.http[0].redirect.derivePort: Unsupported value: "FROM_NOWHERE"'),
    (http({"directResponse": {"status": 700}}),
     "spec.http[0].directResponse.status: Invalid value: 700: must be between 200 and 599"),
    (http({"directResponse": {"body": {"string": "x"}}}),
     "spec.http[0].directResponse.status: Required value"),
    (http(route(dest(), mirror={"host": "a"}, mirrors=[{"destination": {"host": "b"}}])),
     "spec.http[0].mirrors: Forbidden: only one of mirror and mirrors may be set"),
    # durations
    (http(route(dest(), timeout="1x")),
     'spec.http[0].timeout: Invalid value: "1x": must be a duration such as 0.5s, 100ms, 1m or 1h30m'),
    (http(route(dest(), timeout="500us")),
     'spec.http[0].timeout: Invalid value: "500us": duration must be greater than or equal to 1ms'),
    (http(route(dest(), timeout="1.0005s")),
     'spec.http[0].timeout: Invalid value: "1.0005s": only durations to ms precision are supported'),
    (http(route(dest(), timeout=5)), "spec.http[0].timeout: Invalid value: 5: expected string"),
    # regexes (RE2, not Python's re: look-aheads are errors)
    (http(route(dest(), match=[{"uri": {"regex": "^/api/(?=v1)"}}])),
     'spec.http[0].match[0].uri.regex: Invalid value: "^/api/(?=v1)": must be a valid RE2 regular expression: invalid perl operator: (?='),
    (http(route(dest(), match=[{"headers": {"end-user": {"regex": "(jason"}}}])),
     "spec.http[0].match[0].headers[end-user].regex: Invalid value"),
    (http(route(dest(), rewrite={"uriRegexRewrite": {"match": "a(", "rewrite": "/"}})),
     "spec.http[0].rewrite.uriRegexRewrite.match: Invalid value"),
    (http(route(dest(), match=[{"uri": {"exact": "/a", "prefix": "/"}}])),
     "spec.http[0].match[0].uri: Invalid value"),
    (http(route(dest(), match=[{"headers": {"end user": {"exact": "jason"}}}])),
     'spec.http[0].match[0].headers[end user]: Invalid value: "end user": must be a valid HTTP header name'),
    (http(route(dest(), match=[{"withoutHeaders": {"@request.auth.claims.": {}}}])),
     'spec.http[0].match[0].withoutHeaders[@request.auth.claims.]: Invalid value'),
    (http(route(dest(), match=[{"port": 0}])),
     "spec.http[0].match[0].port: Invalid value: 0: must be between 1 and 65535"),
    # fault
    (http(route(dest(), fault={"abort": {"httpStatus": 600, "percentage": {"value": 10}}})),
     "spec.http[0].fault.abort.httpStatus: Invalid value: 600: must be between 200 and 599"),
    (http(route(dest(), fault={"abort": {"httpStatus": 500, "percentage": {"value": 101}}})),
     "spec.http[0].fault.abort.percentage.value: Invalid value: 101: must be between 0 and 100"),
    (http(route(dest(), fault={"abort": {"percentage": {"value": 10}}})),
     "spec.http[0].fault.abort: Required value: one of httpStatus, grpcStatus, http2Error is required"),
    (http(route(dest(), fault={"delay": {"percentage": {"value": 10}}})),
     "spec.http[0].fault.delay: Required value: one of fixedDelay, exponentialDelay is required"),
    (http(route(dest(), fault={"delay": {"fixedDelay": "0s"}})),
     'spec.http[0].fault.delay.fixedDelay: Invalid value: "0s": duration must be greater than or equal to 1ms'),
    (http(route(dest(), fault={"abort": {"grpcStatus": "BROKEN"}})),
     'spec.http[0].fault.abort.grpcStatus: Unsupported value: "BROKEN"'),
    (http(route(dest(), mirrorPercentage={"value": -5})),
     "spec.http[0].mirrorPercentage.value: Invalid value: -5: must be between 0 and 100"),
    # retries
    (http(route(dest(), retries={"attempts": -1})),
     "spec.http[0].retries.attempts: Invalid value: -1: must be greater than or equal to 0"),
    (http(route(dest(), retries={"attempts": 3, "retryOn": "5xx,sometimes"})),
     'spec.http[0].retries.retryOn: Unsupported value: "sometimes"'),
    (http(route(dest(), retries={"attempts": 3, "perTryTimeout": "2"})),
     'spec.http[0].retries.perTryTimeout: Invalid value: "2": must be a duration'),
    # headers and CORS
    (http(route(dest(), headers={"request": {"set": {":path": "/x"}}})),
     'spec.http[0].headers.request.set[:path]: Invalid value: ":path": pseudo-headers'),
    (http(route(dest(), corsPolicy={"allowMethods": ["FETCH"]})),
     'spec.http[0].corsPolicy.allowMethods[0]: Unsupported value: "FETCH"'),
    # exportTo and gateways
    (http(route(dest()), exportTo=["*", "."]),
     'spec.exportTo: Invalid value: ["*","."]: cannot mix "*" (every namespace) with other entries'),
    (http(route(dest()), exportTo=["Bad_NS"]),
     'spec.exportTo[0]: Invalid value: "Bad_NS": must be ".", "*" or a namespace name'),
    (http(route(dest()), gateways=["istio-system/Bad_GW"]),
     'spec.gateways[0]: Invalid value: "istio-system/Bad_GW": gateway name'),
    # delegates
    (vs({"gateways": ["gw"], "http": [route(dest())]}),
     "spec.gateways: Forbidden: a delegate virtual service (one with no hosts) must not name gateways"),
    (vs({"tcp": [route(dest())]}),
     "spec.tcp: Forbidden: a delegate virtual service (one with no hosts) must not have tcp routes"),
    (vs({"http": [{"delegate": {"name": "other"}}]}),
     "spec.http[0].delegate: Forbidden: a delegate virtual service cannot delegate further"),
    (http({"delegate": {"namespace": "nsa"}}), "spec.http[0].delegate.name: Required value"),
    # tls and tcp
    (vs({"hosts": ["*.bookinfo.com"], "tls": [route(dest())]}),
     "spec.tls[0].match: Required value: a tls route needs a match with sniHosts"),
    (vs({"hosts": ["*.bookinfo.com"], "tls": [route(dest(), match=[{"port": 443}])]}),
     "spec.tls[0].match[0].sniHosts: Required value"),
    (vs({"hosts": ["*.bookinfo.com"], "tls": [route(dest(), match=[{"sniHosts": ["login.other.com"]}])]}),
     'spec.tls[0].match[0].sniHosts[0]: Invalid value: "login.other.com": must be one of the virtual service\'s hosts'),
    (vs({"hosts": ["mongo"], "tcp": [{"match": [{"port": 27017}]}]}),
     "spec.tcp[0].route: Required value"),
    (vs({"hosts": ["mongo"], "tcp": [route(dest(host="a", weight=50), dest(host="b", weight=60))]}),
     "spec.tcp[0].route: Invalid value: 110: total destination weight must be 100"),
    (vs({"hosts": ["mongo"], "tcp": [route(dest(), match=[{"destinationSubnets": ["10.0.0.0/33"]}])]}),
     'spec.tcp[0].match[0].destinationSubnets[0]: Invalid value: "10.0.0.0/33": must be an IP address or CIDR'),
]


@pytest.mark.parametrize("obj,expected", VS_CASES, ids=[c[1][:60] for c in VS_CASES])
def test_virtual_service_rule_rejects_with_field_path(obj, expected):
    found = messages(obj)
    assert any(m.startswith(expected) for m in found), found


DR_CASES = [
    (dr({"host": ""}), "spec.host: Required value"),
    (dr({"host": "re*views"}), 'spec.host: Invalid value: "re*views": wildcards are only allowed'),
    (dr({"subsets": [{"name": "v1"}, {"name": "v1"}]}), 'spec.subsets[1].name: Duplicate value: "v1"'),
    (dr({"subsets": [{"name": "V1"}]}), 'spec.subsets[0].name: Invalid value: "V1": a lowercase RFC 1123 label'),
    (dr({"subsets": [{"labels": {"version": "v1"}}]}), "spec.subsets[0].name: Required value"),
    (dr({"subsets": [{"name": "v1", "labels": {"version": "not ok!"}}]}),
     'spec.subsets[0].labels[version]: Invalid value: "not ok!"'),
    (dr({"subsets": [{"name": "v1", "lables": {}}]}), "spec.subsets[0].lables: Unknown field"),
    (dr({"trafficPolicy": {}}), "spec.trafficPolicy: Required value: a traffic policy must set at least one field"),
    (dr({"trafficPolicy": {"loadBalancer": {"simple": "FASTEST"}}}),
     'spec.trafficPolicy.loadBalancer.simple: Unsupported value: "FASTEST"'),
    (dr({"trafficPolicy": {"loadBalancer": {"simple": "RANDOM", "consistentHash": {"useSourceIp": True}}}}),
     "spec.trafficPolicy.loadBalancer: Invalid value"),
    (dr({"trafficPolicy": {"loadBalancer": {"consistentHash": {}}}}),
     "spec.trafficPolicy.loadBalancer.consistentHash: Required value: one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName is required (the hash key)"),
    (dr({"trafficPolicy": {"loadBalancer": {"consistentHash": {"httpHeaderName": "x-user", "useSourceIp": True}}}}),
     "spec.trafficPolicy.loadBalancer.consistentHash: Invalid value"),
    (dr({"trafficPolicy": {"loadBalancer": {"consistentHash": {"httpCookie": {"ttl": "1s"}}}}}),
     "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: Required value"),
    (dr({"trafficPolicy": {"loadBalancer": {"consistentHash": {"useSourceIp": True, "maglev": {"tableSize": 1000}}}}}),
     "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: Invalid value: 1000: must be a prime number"),
    (dr({"trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN", "warmupDurationSecs": "1x"}}}),
     'spec.trafficPolicy.loadBalancer.warmupDurationSecs: Invalid value: "1x"'),
    (dr({"trafficPolicy": {"loadBalancer": {"localityLbSetting": {"distribute": [{"from": "a/*", "to": {"a/*": 70, "b/*": 20}}]}}}}),
     "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to: Invalid value: 90: the weights must sum to 100"),
    (dr({"trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": -1}}}}),
     "spec.trafficPolicy.connectionPool.tcp.maxConnections: Invalid value: -1: must be greater than or equal to 0"),
    (dr({"trafficPolicy": {"connectionPool": {"http": {"http1MaxPendingRequests": -2}}}}),
     "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests: Invalid value: -2"),
    (dr({"trafficPolicy": {"connectionPool": {"tcp": {"connectTimeout": "30"}}}}),
     'spec.trafficPolicy.connectionPool.tcp.connectTimeout: Invalid value: "30": must be a duration'),
    (dr({"trafficPolicy": {"connectionPool": {"http": {"h2UpgradePolicy": "ALWAYS"}}}}),
     'spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: Unsupported value: "ALWAYS"'),
    (dr({"trafficPolicy": {"connectionPool": {}, "tls": {"mode": "SIMPLE"}}}),
     "spec.trafficPolicy.connectionPool: Required value: a connection pool must set tcp or http"),
    (dr({"trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": "1"}}}}),
     'spec.trafficPolicy.connectionPool.tcp.maxConnections: Invalid value: "1": expected integer'),
    (dr({"trafficPolicy": {"outlierDetection": {"maxEjectionPercent": 150}}}),
     "spec.trafficPolicy.outlierDetection.maxEjectionPercent: Invalid value: 150: must be between 0 and 100"),
    (dr({"trafficPolicy": {"outlierDetection": {"minHealthPercent": -1}}}),
     "spec.trafficPolicy.outlierDetection.minHealthPercent: Invalid value: -1"),
    (dr({"trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": -3}}}),
     "spec.trafficPolicy.outlierDetection.consecutive5xxErrors: Invalid value: -3"),
    (dr({"trafficPolicy": {"outlierDetection": {"interval": "0.5ms"}}}),
     'spec.trafficPolicy.outlierDetection.interval: Invalid value: "0.5ms": duration must be greater than or equal to 1ms'),
    (dr({"trafficPolicy": {"tls": {"mode": "STRICT"}}}),
     'spec.trafficPolicy.tls.mode: Unsupported value: "STRICT": supported values: "DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"'),
    (dr({"trafficPolicy": {"tls": {"mode": "MUTUAL"}}}),
     "spec.trafficPolicy.tls.clientCertificate: Required value: MUTUAL needs credentialName or clientCertificate and privateKey"),
    (dr({"trafficPolicy": {"tls": {"mode": "MUTUAL", "clientCertificate": "/c.pem"}}}),
     "spec.trafficPolicy.tls.privateKey: Required value"),
    (dr({"trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL", "privateKey": "/k.pem"}}}),
     "spec.trafficPolicy.tls.privateKey: Forbidden: ISTIO_MUTUAL uses the mesh's own certificates"),
    (dr({"trafficPolicy": {"tls": {"mode": "SIMPLE", "credentialName": "c", "caCertificates": "/ca.pem"}}}),
     "spec.trafficPolicy.tls.caCertificates: Forbidden: cannot be set together with credentialName"),
    (dr({"trafficPolicy": {"portLevelSettings": [{"port": {"number": 0}, "tls": {"mode": "SIMPLE"}}]}}),
     "spec.trafficPolicy.portLevelSettings[0].port.number: Required value"),
    (dr({"trafficPolicy": {"portLevelSettings": [{"port": {"number": 99999}, "tls": {"mode": "SIMPLE"}}]}}),
     "spec.trafficPolicy.portLevelSettings[0].port.number: Invalid value: 99999"),
    (dr({"trafficPolicy": {"portLevelSettings": [{"port": {"number": 80}, "tls": {"mode": "SIMPLE"}},
                                                 {"port": {"number": 80}, "tls": {"mode": "DISABLE"}}]}}),
     "spec.trafficPolicy.portLevelSettings[1].port.number: Duplicate value: 80"),
    (dr({"trafficPolicy": {"portLevelSettings": [{"port": {"number": 80}}]}}),
     "spec.trafficPolicy.portLevelSettings[0]: Required value: a port traffic policy must set"),
    (dr({"trafficPolicy": {"portLevelSettings": [{"port": {"number": 80},
                                                  "outlierDetection": {"maxEjectionPercent": 101}}]}}),
     "spec.trafficPolicy.portLevelSettings[0].outlierDetection.maxEjectionPercent: Invalid value: 101"),
    (dr({"subsets": [{"name": "v1", "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": -1}}}}]}),
     "spec.subsets[0].trafficPolicy.connectionPool.tcp.maxConnections: Invalid value: -1"),
    (dr({"exportTo": ["~nope"]}), 'spec.exportTo[0]: Invalid value: "~nope"'),
]


@pytest.mark.parametrize("obj,expected", DR_CASES, ids=[c[1][:60] for c in DR_CASES])
def test_destination_rule_rule_rejects_with_field_path(obj, expected):
    found = messages(obj)
    assert any(m.startswith(expected) for m in found), found


def patch(apply_to="HTTP_FILTER", operation="INSERT_BEFORE", value=None, **match) -> dict:
    return {"applyTo": apply_to,
            "match": match or {"context": "SIDECAR_INBOUND", "listener": {"filterChain": {}}},
            "patch": {"operation": operation,
                      **({} if value is False else {"value": value or {"name": "x"}})}}


EF_CASES = [
    (ef({"configPatches": [patch(apply_to="HTTP_FILTERS")]}),
     'spec.configPatches[0].applyTo: Unsupported value: "HTTP_FILTERS"'),
    (ef({"configPatches": [patch(apply_to="INVALID")]}), "spec.configPatches[0].applyTo: Required value"),
    (ef({"configPatches": [patch(context="SIDECAR", listener={})]}),
     'spec.configPatches[0].match.context: Unsupported value: "SIDECAR": supported values: "ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY"'),
    (ef({"configPatches": [patch(operation="UPSERT")]}),
     'spec.configPatches[0].patch.operation: Unsupported value: "UPSERT"'),
    (ef({"configPatches": [patch(value=False)]}),
     "spec.configPatches[0].patch.value: Required value: a INSERT_BEFORE patch needs a value"),
    (ef({"configPatches": [patch(apply_to="CLUSTER", operation="INSERT_FIRST", cluster={"service": "a"})]}),
     'spec.configPatches[0].patch.operation: Invalid value: "INSERT_FIRST": only valid when applyTo is one of'),
    (ef({"configPatches": [patch(apply_to="LISTENER", operation="REPLACE", listener={})]}),
     'spec.configPatches[0].patch.operation: Invalid value: "REPLACE"'),
    (ef({"configPatches": [patch(apply_to="CLUSTER", operation="MERGE", listener={"portNumber": 80})]}),
     'spec.configPatches[0].match.listener: Invalid value: "CLUSTER": applyTo CLUSTER needs a cluster match'),
    (ef({"configPatches": [patch(context="ANY", listener={}, cluster={})]}),
     "spec.configPatches[0].match: Invalid value"),
    (ef({"configPatches": [patch(context="ANY", proxy={"proxyVersion": "^1\\.(?!2)"})]}),
     "spec.configPatches[0].match.proxy.proxyVersion: Invalid value"),
    (ef({"configPatches": [{"applyTo": "HTTP_FILTER", "match": {}}]}), "spec.configPatches[0].patch: Required value"),
    (ef({"configPatches": [patch(value=["not", "an", "object"])]}),
     'spec.configPatches[0].patch.value: Invalid value: "list": must be an object'),
    (ef({"workloadSelector": {"labels": {"app": "bad value!"}}}),
     'spec.workloadSelector.labels[app]: Invalid value: "bad value!"'),
    (ef({"workloadSelector": {"matchLabels": {"app": "x"}}}), "spec.workloadSelector.matchLabels: Unknown field"),
    (ef({"priority": "high"}), 'spec.priority: Invalid value: "high": expected integer'),
    (ef({"configPatches": [{**patch(), "patches": []}]}), "spec.configPatches[0].patches: Unknown field"),
]


@pytest.mark.parametrize("obj,expected", EF_CASES, ids=[c[1][:60] for c in EF_CASES])
def test_envoy_filter_shape_rejects_with_field_path(obj, expected):
    found = messages(obj)
    assert any(m.startswith(expected) for m in found), found


def test_every_served_version_validates_alike():
    bad = http(route(dest(subset="v1", weight=80), dest(subset="v2", weight=120)))
    for version in ("v1", "v1beta1", "v1alpha3"):
        found = messages({**bad, "apiVersion": f"networking.istio.io/{version}"})
        assert "spec.http[0].route[1].weight: Invalid value: 120: must be between 0 and 100, inclusive" in found


def test_the_api_error_lists_every_problem_with_paths():
    bad = _with_namespace(http(route(dest(subset="v1", weight=80), dest(subset="v2", weight=120)),
                               route(dest(), timeout="fast")))
    with pytest.raises(Invalid) as info:
        validation.validate(bad)
    text = str(info.value)
    assert text.startswith('VirtualService "reviews" is invalid: [')
    assert "spec.http[0].route[1].weight: Invalid value: 120" in text
    assert 'spec.http[1].timeout: Invalid value: "fast"' in text
    causes = info.value.details["causes"]
    assert {c["field"] for c in causes} == {"spec.http[0].route[1].weight", "spec.http[1].timeout"}


def test_istio_accepts_mixed_case_headers_and_jwt_claim_matches():
    assert messages(http(route(dest(), match=[{"headers": {
        "End-User": {"exact": "jason"}, "@request.auth.claims.groups": {"exact": "admin"}}}]))) == []


def test_a_missing_subset_or_host_is_accepted():
    """Istio accepts references to things that do not exist (yet): analysis reports them."""
    assert messages(http(route(dest(host="reviewz", subset="v9")))) == []


@pytest.mark.parametrize("text,nanos", [
    ("0.5s", 500_000_000), ("1m", 60_000_000_000), ("1h", 3_600_000_000_000),
    ("100ms", 100_000_000), ("1h30m", 5_400_000_000_000), ("7s", 7_000_000_000),
    ("250us", 250_000), ("0", 0), (".5s", 500_000_000),
])
def test_durations_are_read_as_istio_writes_them(text, nanos):
    assert common.parse_duration(text) == nanos


@pytest.mark.parametrize("text", ["", "5", "1x", "s", "1.5", "1m x", "--1s"])
def test_malformed_durations(text):
    assert common.parse_duration(text) is None
