"""Label and field selectors: Kubernetes syntax, matching and error messages."""

from __future__ import annotations

import pytest

from shoal.api import errors, selectors

LABELS = {"app": "web", "tier": "frontend", "version": "7", "example.com/team": "core",
          "empty": ""}


@pytest.mark.parametrize("text,matches,canonical", [
    ("", True, ""),
    ("app=web", True, "app=web"),
    ("app==web", True, "app==web"),
    ("app!=web", False, "app!=web"),
    ("app!=db", True, "app!=db"),
    ("missing!=x", True, "missing!=x"),
    ("app in (web,db)", True, "app in (db,web)"),
    ("app in (db)", False, "app in (db)"),
    ("app notin (db, cache)", True, "app notin (cache,db)"),
    ("app notin (web)", False, "app notin (web)"),
    ("missing notin (web)", True, "missing notin (web)"),
    ("app", True, "app"),
    ("missing", False, "missing"),
    ("!missing", True, "!missing"),
    ("!app", False, "!app"),
    ("version>5", True, "version>5"),
    ("version<5", False, "version<5"),
    ("app>5", False, "app>5"),
    ("example.com/team=core", True, "example.com/team=core"),
    ("empty=", True, "empty="),
    ("empty in (,x)", True, "empty in (,x)"),
    ("  tier = frontend ,app in ( web ) , !missing  ", True, "app in (web),!missing,tier=frontend"),
    ("app=web,tier=backend", False, "app=web,tier=backend"),
    ("in=notin", False, "in=notin"),
])
def test_label_selector_forms(text, matches, canonical):
    selector = selectors.parse_label_selector(text)
    assert selector.matches(LABELS) is matches
    assert str(selector) == canonical
    assert selectors.parse_label_selector(str(selector)) == selector


def test_empty_selector_matches_everything_even_without_labels():
    for text in (None, "", "   "):
        selector = selectors.parse_label_selector(text)
        assert selector.empty
        assert selector.matches(None) and selector.matches({})
    assert not selectors.parse_label_selector("a").empty


def test_exact_labels_for_index_lookups():
    selector = selectors.parse_label_selector("app=web,tier in (x),v in (1,2),!z")
    assert selector.exact_labels() == {"app": "web", "tier": "x"}


@pytest.mark.parametrize("text,message", [
    ("=web", "found '=', expected: !, identifier, or 'end of string'"),
    ("app=web=x", "found '=', expected: ',' or 'end of string'"),
    ("app=web db", "found 'db', expected: ',' or 'end of string'"),
    ("app,", "found '', expected: identifier after ','"),
    ("app web", "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt"),
    ("app in web", "unable to parse requirement: found 'web' expected: '('"),
    ("app in (web", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("app in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
    ("app in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
    ("app=(x)", "unable to parse requirement: found '(', expected: identifier"),
    ("!", "unable to parse requirement: found '', expected: identifier"),
    ("!app=x", "found '=', expected: ',' or 'end of string'"),
    ("version>x", "unable to parse requirement: values[0]: Invalid value"),
    ("-app=x", "unable to parse requirement: key: Invalid value"),
    ("a/b/c", "unable to parse requirement: key: Invalid value"),
    ("/app", "prefix part must be non-empty"),
    ("Bad_Prefix/app", "prefix part a lowercase RFC 1123 subdomain"),
    ("app=" + "x" * 64, "must be no more than 63 characters"),
    ("app=web!", "found '!', expected: ',' or 'end of string'"),
    ("app=%", "a valid label must be an empty string"),
])
def test_label_selector_errors_name_the_bad_part(text, message):
    with pytest.raises(errors.BadRequest) as caught:
        selectors.parse_label_selector(text)
    assert message in caught.value.message
    assert caught.value.code == 400


def test_selector_from_spec_follows_label_selector_as_selector():
    assert selectors.selector_from_spec(None) is selectors.NOTHING
    assert not selectors.selector_from_spec(None).matches(LABELS)
    assert selectors.selector_from_spec({}).empty
    spec = {"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["frontend", "edge"]},
        {"key": "legacy", "operator": "DoesNotExist"},
        {"key": "version", "operator": "Exists"},
        {"key": "zone", "operator": "NotIn", "values": ["b"]},
    ]}
    selector = selectors.selector_from_spec(spec)
    assert str(selector) == "app=web,!legacy,tier in (edge,frontend),version,zone notin (b)"
    assert selector.matches(LABELS)
    assert not selector.matches({**LABELS, "legacy": "1"})
    assert not selector.matches({**LABELS, "tier": "backend"})


def test_selector_from_spec_accepts_the_plain_map_form():
    selector = selectors.selector_from_spec({"app": "web", "tier": "frontend"})
    assert str(selector) == "app=web,tier=frontend"
    assert selector.matches(LABELS) and not selector.matches({"app": "web"})


def test_service_without_selector_selects_no_pods():
    assert not selectors.selector_from_service(None).matches(LABELS)
    assert not selectors.selector_from_service({}).matches(LABELS)
    assert selectors.selector_from_service({"app": "web"}).matches(LABELS)


@pytest.mark.parametrize("spec,words", [
    ({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
     "selector.matchExpressions[0].operator: Unsupported value: \"Equals\""),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
     "selector.matchExpressions[0].values: Invalid value: []: for 'in', 'notin' operators"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     "values set must be empty for exists and does not exist"),
    ({"matchExpressions": [{"operator": "Exists"}]}, "selector.matchExpressions[0].key: Required value"),
    ({"matchLabels": {"app": "bad value"}}, "selector.matchLabels.app: Invalid value"),
    ({"bad key": "x"}, "name part must consist of"),
])
def test_invalid_selector_specs_name_the_field(spec, words):
    with pytest.raises(errors.BadRequest) as caught:
        selectors.selector_from_spec(spec)
    assert words in caught.value.message
    assert selectors.label_selector_errors(spec)


def test_label_selector_errors_is_empty_for_valid_specs():
    assert selectors.label_selector_errors(None) == []
    assert selectors.label_selector_errors({"matchLabels": {"app": "web"}}) == []


def test_format_labels():
    assert selectors.format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert selectors.format_labels({}) == "<none>"


# ----------------------------------------------------------------------------- fields

POD = {"kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop"},
       "spec": {"nodeName": "node-a", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                "serviceAccountName": "web"},
       "status": {"phase": "Running", "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}]}}
EVENT = {"kind": "Event", "metadata": {"name": "web-1.abc", "namespace": "shop"},
         "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "u1",
                            "apiVersion": "v1", "resourceVersion": "12",
                            "fieldPath": "spec.containers{web}"},
         "reason": "Pulled", "type": "Normal", "reportingComponent": "kubelet",
         "source": {"component": "kubelet", "host": "node-a"}}


@pytest.mark.parametrize("kind,obj,text,expected", [
    ("Pod", POD, "metadata.name=web-1", True),
    ("Pod", POD, "metadata.name==web-2", False),
    ("Pod", POD, "metadata.namespace!=shop", False),
    ("Pod", POD, "spec.nodeName=node-a,status.phase=Running", True),
    ("Pod", POD, "spec.nodeName=", False),
    ("Pod", {"kind": "Pod", "spec": {}}, "spec.nodeName=", True),
    ("Pod", POD, "spec.restartPolicy=Always,spec.schedulerName=default-scheduler", True),
    ("Pod", POD, "spec.serviceAccountName=web,status.podIP=10.42.0.5", True),
    ("Pod", POD, "status.phase!=Succeeded,status.phase!=Failed", True),
    ("Pod", POD, "status.nominatedNodeName=", True),
    ("Event", EVENT, "involvedObject.kind=Pod,involvedObject.name=web-1", True),
    ("Event", EVENT, "involvedObject.namespace=shop,involvedObject.uid=u1", True),
    ("Event", EVENT, "involvedObject.apiVersion=v1,involvedObject.resourceVersion=12", True),
    ("Event", EVENT, "involvedObject.fieldPath=spec.containers{web}", True),
    ("Event", EVENT, "reason=Pulled,type=Normal,source=kubelet,reportingComponent=kubelet", True),
    ("Event", EVENT, "type=Warning", False),
    ("Secret", {"type": "kubernetes.io/tls"}, "type=kubernetes.io/tls", True),
    ("Namespace", {"status": {"phase": "Terminating"}}, "status.phase=Active", False),
    ("ReplicaSet", {"status": {"replicas": 0}}, "status.replicas=0", True),
    ("ReplicaSet", {"status": {}}, "status.replicas!=0", False),
    ("ConfigMap", {"metadata": {"name": "a,b"}}, r"metadata.name=a\,b", True),
    ("ConfigMap", {"metadata": {"name": "x"}}, "", True),
])
def test_field_selectors_per_kind(kind, obj, text, expected):
    selector = selectors.parse_field_selector(text, kind)
    assert selector.matches(obj) is expected


def test_field_selector_exact_value_and_string():
    selector = selectors.parse_field_selector("status.phase!=Failed,spec.nodeName=node-a", "Pod")
    assert selector.exact_value("spec.nodeName") == "node-a"
    assert selector.exact_value("status.phase") is None
    assert str(selector) == "spec.nodeName=node-a,status.phase!=Failed"
    assert selectors.parse_field_selector(None, "Pod").empty


@pytest.mark.parametrize("kind,text", [
    ("Pod", "spec.foo=bar"),
    ("Pod", "type=Opaque"),
    ("ConfigMap", "spec.nodeName=a"),
    ("Deployment", "status.replicas=1"),
    ("Secret", "metadata.labels=x"),
])
def test_unsupported_field_is_a_bad_request_like_kubernetes(kind, text):
    with pytest.raises(errors.BadRequest) as caught:
        selectors.parse_field_selector(text, kind)
    assert caught.value.message == f"field label not supported: {text.split('=')[0]}"


@pytest.mark.parametrize("text,words", [
    ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
    (r"metadata.name=a\x", "invalid escape sequence"),
    ("metadata.name=a=b", "unescaped character in value"),
])
def test_malformed_field_selectors(text, words):
    with pytest.raises(errors.BadRequest, match=words.replace("(", r"\(")):
        selectors.parse_field_selector(text, "Pod")
