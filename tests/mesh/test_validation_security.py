"""AuthorizationPolicy and RequestAuthentication validation through the API's own path
(`shoal.api.validation.validate` with the mesh kinds registered, as the API server runs
it on create and update): Istio's documented YAML passes unchanged; every malformed
field is refused with its path; nothing echoes key material."""

from __future__ import annotations

import copy
import json
import pathlib

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from shoal.api import kinds as api_kinds
from shoal.api import validation
from shoal.api.errors import Invalid
from shoal.mesh import kinds

DOCS = list(yaml.safe_load_all("""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: default}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: istio-system}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: productpage-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  action: ALLOW
  rules:
  - to:
    - operation:
        methods: ["GET"]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: details-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/bookinfo-productpage"]
    to:
    - operation:
        methods: ["GET"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-method-get, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: DENY
  rules:
  - to:
    - operation:
        methods: ["GET"]
    when:
    - key: request.headers[x-token]
      notValues: ["admin"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: tcp-policy, namespace: foo}
spec:
  selector: {matchLabels: {app: tcp-echo}}
  action: ALLOW
  rules:
  - to:
    - operation:
        ports: ["9000", "9001"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: ALLOW
  rules:
  - from:
    - source:
        requestPrincipals: ["testing@secure.istio.io/testing@secure.istio.io"]
    when:
    - key: request.auth.claims[groups]
      values: ["group1"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ingress-policy, namespace: istio-system}
spec:
  selector: {matchLabels: {app: istio-ingressgateway}}
  action: ALLOW
  rules:
  - from:
    - source:
        remoteIpBlocks: ["1.2.3.4", "5.6.7.0/24"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-headers, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: AUDIT
  rules:
  - to:
    - operation:
        paths: ["/headers"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: httpbin, namespace: foo}
spec:
  action: DENY
  rules:
  - from:
    - source:
        notNamespaces: ["foo"]
        notPrincipals: ["cluster.local/ns/bar/sa/*"]
        serviceAccounts: []
    to:
    - operation:
        hosts: ["*.example.com"]
        notPaths: ["/healthz", "/api/{*}/status/{**}"]
        notPorts: ["15021"]
    when:
    - key: source.ip
      values: ["10.1.2.3", "10.2.0.0/16"]
    - key: request.auth.claims[nested][key]
      values: ["x"]
    - key: destination.port
      notValues: ["8080"]
    - key: connection.sni
      values: ["*.example.com"]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt-example, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  jwtRules:
  - issuer: "testing@secure.istio.io"
    jwksUri: "https://raw.githubusercontent.com/istio/istio/release-1.28/security/tools/jwt/samples/jwks.json"
---
apiVersion: security.istio.io/v1beta1
kind: RequestAuthentication
metadata: {name: jwt-on-ingress, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules:
  - issuer: "testing@secure.istio.io"
    jwksUri: "https://example.com/jwks.json"
    fromHeaders: [{name: x-jwt-assertion, prefix: "Bearer "}]
    fromParams: ["my_token"]
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{header: x-jwt-claim-foo, claim: foo}]
    forwardOriginalToken: true
    audiences: ["web"]
    timeout: 2s
"""))


@pytest.fixture(autouse=True)
def registry():
    saved = dict(api_kinds._registry)
    kinds.register_kinds()
    try:
        yield
    finally:
        api_kinds._registry.clear()
        api_kinds._registry.update(saved)
        api_kinds._reindex()


def messages(obj: dict) -> list[str]:
    try:
        validation.validate(copy.deepcopy(obj))
    except Invalid as exc:
        return [str(e) for e in exc.errors]
    return []


EXAMPLES = [doc for path in sorted((pathlib.Path(__file__).parents[2] / "examples" / "security")
                                   .glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text())]


@pytest.mark.parametrize("doc", DOCS + EXAMPLES, ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")
def test_istio_documented_yaml_is_accepted(doc):
    assert messages(doc) == []


def ap(spec) -> dict:
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "p", "namespace": "foo"}, "spec": spec}


def ra(*rules, **spec) -> dict:
    return {"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
            "metadata": {"name": "r", "namespace": "foo"},
            "spec": {"jwtRules": list(rules), **spec}}


def rule_from(**source):
    return {"rules": [{"from": [{"source": source}]}]}


def rule_to(**operation):
    return {"rules": [{"to": [{"operation": operation}]}]}


def when(*conditions):
    return {"rules": [{"when": list(conditions)}]}


BAD = [
    (ap({"action": "CUSTOM", "provider": {"name": "ext"}, "rules": [{}]}),
     'spec.action: Invalid value: "CUSTOM": CUSTOM delegates to an external authorizer'),
    (ap({"action": "BLOCK"}), 'spec.action: Unsupported value: "BLOCK"'),
    (ap({"action": "DENY"}), "spec.rules: Required value: a DENY policy without rules"),
    (ap({"provider": {"name": "x"}}), "spec.provider: Forbidden"),
    (ap({"selector": {"matchLabels": {"app": "a"}}, "targetRefs": [{"kind": "Gateway",
        "group": "gateway.networking.k8s.io", "name": "g"}]}), "spec.targetRefs: Invalid value"),
    (ap({"selector": {"matchLabels": {"app": "a*"}}}), "spec.selector.matchLabels[app]"),
    (ap({"targetRefs": [{"kind": "Pod", "name": "x"}]}), 'spec.targetRefs[0].kind: Invalid value: "Pod"'),
    (ap({"targetRefs": [{"kind": "Service"}]}), "spec.targetRefs[0].name: Required value"),
    (ap({"targetRef": {"kind": "Service", "name": "s", "namespace": "other"}}),
     "spec.targetRef.namespace: Forbidden"),
    (ap({"rules": [None]}), "spec.rules[0]: Required value"),
    (ap({"rules": [{"from": []}]}), "spec.rules[0].from: Required value"),
    (ap({"rules": [{"to": [{}]}]}), "spec.rules[0].to[0].operation: Required value"),
    (ap(rule_from()), "spec.rules[0].from[0].source: Required value"),
    (ap(rule_from(ipBlocks=["10.0.0.300"])), 'spec.rules[0].from[0].source.ipBlocks[0]: Invalid value: "10.0.0.300"'),
    (ap(rule_from(notRemoteIpBlocks=["10.0.0.0/33"])), "spec.rules[0].from[0].source.notRemoteIpBlocks[0]"),
    (ap(rule_from(principals=[""])), "spec.rules[0].from[0].source.principals[0]: Invalid value"),
    (ap(rule_from(serviceAccounts=["a/b/c"])), "spec.rules[0].from[0].source.serviceAccounts[0]"),
    (ap(rule_from(serviceAccounts=["ns/*"])), "wildcards are not allowed in service accounts"),
    (ap(rule_from(serviceAccounts=["sa"], principals=["x"])),
     "spec.rules[0].from[0].source.serviceAccounts: Invalid value"),
    (ap(rule_from(trustDomains=["a*b"])), "spec.rules[0].from[0].source.trustDomains[0]"),
    (ap(rule_to(ports=["http"])), 'spec.rules[0].to[0].operation.ports[0]: Invalid value: "http"'),
    (ap(rule_to(notPorts=["70000"])), "spec.rules[0].to[0].operation.notPorts[0]"),
    (ap(rule_to(ports=[8080])), "spec.rules[0].to[0].operation.ports[0]"),  # Istio: strings
    (ap(rule_to(paths=["/a/{**}/b/{**}"])), "spec.rules[0].to[0].operation.paths[0]"),
    (ap(rule_to(notPaths=["/a/{id}"])), "spec.rules[0].to[0].operation.notPaths[0]"),
    (ap(rule_to(methods=[""])), "spec.rules[0].to[0].operation.methods[0]"),
    (ap({"rules": [{"to": [{"operation": {"method": ["GET"]}}]}]}),
     "spec.rules[0].to[0].operation.method"),  # misspelled field
    (ap(when({"values": ["x"]})), "spec.rules[0].when[0].key: Required value"),
    (ap(when({"key": "source.color", "values": ["x"]})),
     'spec.rules[0].when[0].key: Invalid value: "source.color": unknown attribute'),
    (ap(when({"key": "request.headers", "values": ["x"]})),
     "spec.rules[0].when[0].key: Invalid value: \"request.headers\": must have the form request.headers[NAME]"),
    (ap(when({"key": "request.auth.claims[a", "values": ["x"]})), "spec.rules[0].when[0].key"),
    (ap(when({"key": "destination.labels[app]", "values": ["x"]})), "replaced by the workload selector"),
    (ap(when({"key": "source.ip"})), "spec.rules[0].when[0].values: Required value"),
    (ap(when({"key": "source.ip", "values": ["nope"]})), 'spec.rules[0].when[0].values[0]: Invalid value: "nope"'),
    (ap(when({"key": "destination.port", "notValues": ["-1"]})), "spec.rules[0].when[0].notValues[0]"),
    (ap(when({"key": "source.serviceAccount", "values": ["a/b/c"]})), "spec.rules[0].when[0].values[0]"),
    (ra({"audiences": ["a"]}), "spec.jwtRules[0].issuer: Required value: issuer or jwksUri"),
    (ra({"issuer": "i", "jwksUri": "ftp://keys/jwks.json"}), 'spec.jwtRules[0].jwksUri: Invalid value: "ftp://keys/jwks.json"'),
    (ra({"issuer": "i", "jwksUri": "http://keys:99999/j"}), "spec.jwtRules[0].jwksUri"),
    (ra({"issuer": "i", "audiences": [""]}), "spec.jwtRules[0].audiences[0]"),
    (ra({"issuer": "i", "fromParams": [""]}), "spec.jwtRules[0].fromParams[0]"),
    (ra({"issuer": "i", "fromHeaders": [{"prefix": "Bearer "}]}), "spec.jwtRules[0].fromHeaders[0].name: Required value"),
    (ra({"issuer": "i", "outputClaimToHeaders": [{"header": "bad header", "claim": "c"}]}),
     "spec.jwtRules[0].outputClaimToHeaders[0].header"),
    (ra({"issuer": "i", "outputClaimToHeaders": [{"header": "x-c"}]}),
     "spec.jwtRules[0].outputClaimToHeaders[0].claim: Required value"),
    (ra({"issuer": "i", "timeout": "5x"}), "spec.jwtRules[0].timeout"),
    (ra({"issuer": "i", "jwks": "not json"}), "spec.jwtRules[0].jwks: Invalid value: <jwks not shown>: not valid JSON"),
    (ra({"issuer": "i", "jwks": '{"keys":[{"kty":"RSA","n":"x"}]}'}), "spec.jwtRules[0].jwks: Invalid value: <jwks not shown>: key 0 is not a usable JWK"),
    (ra({"issuer": "i", "jwks": "{}"}, selector={"matchLabels": {"": "x"}}), "spec.selector.matchLabels[]"),
]


@pytest.mark.parametrize("obj, expected", BAD, ids=[e[:60] for _, e in BAD])
def test_malformed_fields_are_refused_with_their_path(obj, expected):
    found = messages(obj)
    assert any(expected in m for m in found), found


def test_private_key_material_is_refused_and_never_echoed():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = RSAAlgorithm.to_jwk(key)  # includes d, p, q, ...
    jwks = json.dumps({"keys": [json.loads(private)]})
    found = messages(ra({"issuer": "i", "jwks": jwks}))
    assert any("spec.jwtRules[0].jwks" in m and "private key material" in m for m in found)
    secret = json.loads(private)["d"]
    assert not any(secret in m for m in found)
    public = json.dumps({"keys": [json.loads(RSAAlgorithm.to_jwk(key.public_key()))]})
    assert messages(ra({"issuer": "i", "jwks": public})) == []


def test_kinds_are_served_at_v1_and_v1beta1_with_istio_short_names():
    for version in ("v1", "v1beta1"):
        for kind, short in (("AuthorizationPolicy", "ap"), ("RequestAuthentication", "ra")):
            rt = api_kinds.by_kind(f"security.istio.io/{version}", kind)
            assert rt.namespaced and short in rt.short_names
