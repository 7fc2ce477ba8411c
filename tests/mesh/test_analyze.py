"""`analyze`: what istioctl analyze reports about VirtualServices and DestinationRules."""

from __future__ import annotations

from shoal.mesh import analyze as analysis
from shoal.mesh.meshconfig import MeshConfig
from shoal.mesh.source import (
    DESTINATION_RULES, ENDPOINTS, PODS, SERVICES, VIRTUAL_SERVICES, ClusterState,
)


def service(name, ns="default", ports=(9080,), selector=None):
    return (SERVICES, {"metadata": {"name": name, "namespace": ns},
                       "spec": {"selector": selector or {"app": name},
                                "ports": [{"name": f"http-{p}", "port": p} for p in ports]}})


def pod(name, ns="default", **labels):
    return (PODS, {"metadata": {"name": name, "namespace": ns, "labels": labels},
                   "spec": {"containers": [{"name": "app", "image": "x"}]}})


def endpoints(name, *pods, ns="default"):
    return (ENDPOINTS, {"metadata": {"name": name, "namespace": ns},
                        "subsets": [{"addresses": [
                            {"ip": f"10.0.0.{i + 1}", "targetRef": {"kind": "Pod", "name": p}}
                            for i, p in enumerate(pods)], "ports": [{"port": 9080}]}]
                        if pods else []})


def vs(name, spec, ns="default"):
    return (VIRTUAL_SERVICES, {"metadata": {"name": name, "namespace": ns}, "spec": spec})


def dr(name, spec, ns="default"):
    return (DESTINATION_RULES, {"metadata": {"name": name, "namespace": ns}, "spec": spec})


def to(host, subset=None, weight=None):
    d = {"destination": {"host": host, **({"subset": subset} if subset else {})}}
    return {**d, **({"weight": weight} if weight is not None else {})}


REVIEWS_DR = dr("reviews", {"host": "reviews", "subsets": [
    {"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]})
BOOKINFO = [service("reviews"), pod("reviews-v1", app="reviews", version="v1"),
            pod("reviews-v2", app="reviews", version="v2"),
            endpoints("reviews", "reviews-v1", "reviews-v2"), REVIEWS_DR]


def lines(objects, namespace=None):
    return [str(m) for m in analysis.analyze(ClusterState.of(objects), MeshConfig(), namespace)]


def test_a_sound_canary_has_no_messages():
    split = vs("reviews", {"hosts": ["reviews"], "http": [
        {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [to("reviews", "v2")]},
        {"route": [to("reviews", "v1", 80), to("reviews", "v2", 20)]}]})
    assert lines(BOOKINFO + [split]) == []


def test_missing_host_is_ist0101():
    bad = vs("reviews", {"hosts": ["reviews"], "http": [{"route": [to("reviewz")]}]})
    assert lines(BOOKINFO + [bad]) == [
        'Error [IST0101] (VirtualService default/reviews) Referenced host not found: "reviewz"']


def test_missing_subset_is_ist0101_with_host_and_subset():
    bad = vs("reviews", {"hosts": ["reviews"], "http": [
        {"route": [to("reviews", "v1", 50), to("reviews", "v4", 50)]}]})
    assert lines(BOOKINFO + [bad]) == [
        "Error [IST0101] (VirtualService default/reviews) Referenced host+subset in "
        'destinationrule not found: "reviews+v4"']


def test_subset_defined_by_a_rule_not_exported_here_is_missing():
    private = dr("reviews", {"host": "reviews.default.svc.cluster.local", "exportTo": ["."],
                             "subsets": [{"name": "v1", "labels": {"version": "v1"}}]})
    other = vs("caller", {"hosts": ["reviews.default.svc.cluster.local"],
                          "http": [{"route": [to("reviews.default.svc.cluster.local", "v1")]}]},
               ns="shop")
    objects = [o for o in BOOKINFO if o is not REVIEWS_DR] + [private, other]
    found = lines(objects, "shop")
    assert len(found) == 1 and "reviews.default.svc.cluster.local+v1" in found[0]


def test_conflicting_mesh_virtual_services_are_ist0109_on_each():
    a = vs("reviews-a", {"hosts": ["reviews"], "http": [{"route": [to("reviews")]}]})
    b = vs("reviews-b", {"hosts": ["reviews.default.svc.cluster.local"],
                         "http": [{"route": [to("reviews")]}]})
    found = lines(BOOKINFO + [a, b])
    assert [m.split(")")[0] for m in found] == [
        "Error [IST0109] (VirtualService default/reviews-a",
        "Error [IST0109] (VirtualService default/reviews-b"]
    assert ("The VirtualServices default/reviews-a,default/reviews-b associated with mesh "
            "gateway define the same host reviews.default.svc.cluster.local") in found[0]
    # bound to a gateway only: Istio merges those, no conflict
    gw = vs("reviews-b", {"hosts": ["reviews"], "gateways": ["edge"],
                          "http": [{"route": [to("reviews")]}]})
    assert lines(BOOKINFO + [a, gw]) == []


def test_destination_rule_for_unknown_host_is_ist0174():
    assert lines([dr("ratings", {"host": "ratingz"})]) == [
        "Warning [IST0174] (DestinationRule default/ratings) The host ratingz defined in the "
        "DestinationRule does not match any services in the mesh."]


def test_subset_selecting_no_pod_is_ist0173():
    rule = dr("reviews", {"host": "reviews", "subsets": [
        {"name": "v1", "labels": {"version": "v1"}}, {"name": "v4", "labels": {"version": "v4"}}]})
    objects = [o for o in BOOKINFO if o is not REVIEWS_DR] + [rule]
    assert lines(objects) == [
        "Error [IST0173] (DestinationRule default/reviews) The Subset v4 defined in the "
        "DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream)."]


def test_weight_to_a_destination_without_ready_endpoints():
    objects = [service("reviews"), pod("reviews-v1", app="reviews", version="v1"),
               pod("reviews-v2", app="reviews", version="v2"),
               endpoints("reviews", "reviews-v1"), REVIEWS_DR,
               vs("reviews", {"hosts": ["reviews"], "http": [
                   {"route": [to("reviews", "v1", 90), to("reviews", "v2", 10)]}]})]
    found = analysis.analyze(ClusterState.of(objects))
    assert [(m.type.code, m.field) for m in found] == [
        ("SHL0001", "spec.http[0].route[1].destination")]
    assert 'weight 10 goes to "reviews" subset "v2", which has no ready endpoint' in found[0].text
    # a zero weight receives nothing: not reported
    objects[-1] = vs("reviews", {"hosts": ["reviews"], "http": [
        {"route": [to("reviews", "v1", 100), to("reviews", "v2", 0)]}]})
    assert lines(objects) == []


def test_multi_port_service_needs_a_port_ist0112():
    objects = [service("reviews", ports=(9080, 9090)), pod("r", app="reviews"),
               endpoints("reviews", "r"),
               vs("reviews", {"hosts": ["reviews"], "http": [{"route": [to("reviews")]}]})]
    assert lines(objects) == [
        'Error [IST0112] (VirtualService default/reviews) This VirtualService routes to a service '
        '"reviews" that exposes multiple ports [9080 9090]. Specifying a port in the destination '
        "is required to disambiguate."]


def test_rules_after_a_catch_all_are_unreachable_ist0130():
    rules = vs("reviews", {"hosts": ["reviews"], "http": [
        {"route": [to("reviews", "v1")]},
        {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [to("reviews", "v2")]}]})
    assert lines(BOOKINFO + [rules]) == [
        "Warning [IST0130] (VirtualService default/reviews) VirtualService rule #1 not used "
        "(only the last rule can have no matches)."]


def test_missing_delegate_and_namespace_filter():
    root = vs("bookinfo", {"hosts": ["reviews"], "http": [{"delegate": {"name": "gone",
                                                                         "namespace": "nsa"}}]})
    assert lines(BOOKINFO + [root]) == [
        "Error [IST0101] (VirtualService default/bookinfo) Referenced delegate VirtualService "
        'not found: "nsa/gone"']
    assert lines(BOOKINFO + [root], namespace="other") == []


def test_messages_carry_istio_status_entries_and_json():
    bad = vs("reviews", {"hosts": ["reviews"], "http": [{"route": [to("reviewz")]}]})
    (message,) = analysis.analyze(ClusterState.of(BOOKINFO + [bad]))
    assert message.validation_message() == {
        "type": {"code": "IST0101", "name": "ReferencedResourceNotFound"}, "level": "ERROR",
        "documentationUrl": "https://istio.io/latest/docs/reference/config/analysis/ist0101/"}
    assert message.to_json()["origin"] == "VirtualService default/reviews"
    assert message.to_json()["reference"] == "spec.http[0].route[0].destination.host"
    assert analysis.has_errors([message])
