"""Defaulting: every rule Kubernetes applies that we apply, idempotence, no mutation."""

from __future__ import annotations

import base64
import copy

import pytest
import yaml

from shoal.api import defaults, errors
from shoal.api.builtin.pods import image_pull_policy


def deployment(**spec):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}},
                 **spec},
    }


def pod(*containers, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": list(containers) or [{"name": "app", "image": "nginx"}], **spec}}


def service(*ports, **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": list(ports), **spec}}


def test_deployment_defaults():
    spec = defaults.apply_defaults(deployment())["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    template = spec["template"]["spec"]
    assert template["restartPolicy"] == "Always"
    assert template["terminationGracePeriodSeconds"] == 30
    assert template["dnsPolicy"] == "ClusterFirst"
    assert template["schedulerName"] == "default-scheduler"
    assert template["securityContext"] == {}
    assert template["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    # Pod-only rules are not applied to templates, as in Kubernetes.
    assert "serviceAccountName" not in template and "enableServiceLinks" not in template


def test_deployment_keeps_what_the_user_set():
    spec = defaults.apply_defaults(deployment(
        replicas=0, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
        revisionHistoryLimit=2))["spec"]
    assert spec["replicas"] == 0
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": "25%"}
    assert spec["revisionHistoryLimit"] == 2


def test_recreate_strategy_gets_no_rolling_update():
    spec = defaults.apply_defaults(deployment(strategy={"type": "Recreate"}))["spec"]
    assert spec["strategy"] == {"type": "Recreate"}


def test_replicaset_defaults():
    rs = deployment()
    rs["kind"] = "ReplicaSet"
    spec = defaults.apply_defaults(rs)["spec"]
    assert spec["replicas"] == 1
    assert "strategy" not in spec and "revisionHistoryLimit" not in spec
    assert spec["template"]["spec"]["restartPolicy"] == "Always"


def test_pod_spec_defaults():
    spec = defaults.apply_defaults(pod())["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["enableServiceLinks"] is True
    assert spec["serviceAccountName"] == "default"
    assert spec["securityContext"] == {}
    c = spec["containers"][0]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["imagePullPolicy"] == "Always"
    assert c["resources"] == {}


@pytest.mark.parametrize("image,policy", [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("nginx:1.25", "IfNotPresent"),
    ("localhost:5000/team/app", "Always"),
    ("localhost:5000/team/app:v2", "IfNotPresent"),
    ("registry.local/app@sha256:" + "a" * 64, "IfNotPresent"),
])
def test_image_pull_policy_follows_the_tag(image, policy):
    assert image_pull_policy(image) == policy
    spec = defaults.apply_defaults(pod({"name": "a", "image": image}))["spec"]
    assert spec["containers"][0]["imagePullPolicy"] == policy


def test_explicit_pull_policy_is_kept():
    spec = defaults.apply_defaults(pod({"name": "a", "image": "x", "imagePullPolicy": "Never"}))["spec"]
    assert spec["containers"][0]["imagePullPolicy"] == "Never"


def test_container_ports_default_to_tcp_and_host_network_copies_ports():
    spec = defaults.apply_defaults(pod({"name": "a", "image": "x", "ports": [{"containerPort": 80}]},
                                       hostNetwork=True))["spec"]
    assert spec["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP", "hostPort": 80}]
    spec = defaults.apply_defaults(pod({"name": "a", "image": "x", "ports": [{"containerPort": 80}]}))["spec"]
    assert spec["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]


def test_probe_defaults():
    c = {"name": "a", "image": "x",
         "livenessProbe": {"httpGet": {"port": 8080}},
         "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 0, "failureThreshold": 5}}
    c = defaults.apply_defaults(pod(c))["spec"]["containers"][0]
    assert c["livenessProbe"] == {"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
                                  "timeoutSeconds": 1, "periodSeconds": 10,
                                  "successThreshold": 1, "failureThreshold": 3}
    assert c["readinessProbe"]["periodSeconds"] == 10  # zero means unset, as in Kubernetes
    assert c["readinessProbe"]["failureThreshold"] == 5


def test_lifecycle_http_get_and_env_field_ref_defaults():
    c = {"name": "a", "image": "x",
         "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/quit"}}},
         "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}
    c = defaults.apply_defaults(pod(c))["spec"]["containers"][0]
    assert c["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/quit", "scheme": "HTTP"}
    assert c["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "status.podIP", "apiVersion": "v1"}


def test_pod_requests_default_to_limits_but_not_in_templates():
    c = {"name": "a", "image": "x",
         "resources": {"limits": {"cpu": "1", "memory": "64Mi"}, "requests": {"cpu": "100m"}}}
    res = defaults.apply_defaults(pod(c))["spec"]["containers"][0]["resources"]
    assert res["requests"] == {"cpu": "100m", "memory": "64Mi"}
    d = deployment()
    d["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
    tres = defaults.apply_defaults(d)["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert tres == {"limits": {"cpu": "1"}}


def test_volume_defaults():
    spec = defaults.apply_defaults(pod(volumes=[
        {"name": "scratch"},
        {"name": "conf", "configMap": {"name": "app"}},
        {"name": "creds", "secret": {"secretName": "app", "defaultMode": 0o400}},
        {"name": "host", "hostPath": {"path": "/tmp"}},
    ]))["spec"]
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert vols["conf"]["configMap"]["defaultMode"] == 420
    assert vols["creds"]["secret"]["defaultMode"] == 0o400
    assert vols["host"]["hostPath"]["type"] == ""


def test_service_defaults():
    spec = defaults.apply_defaults(service({"port": 80}, {"name": "metrics", "port": 9090,
                                                          "targetPort": "metrics"}))["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in spec
    assert spec["ports"][0] == {"port": 80, "protocol": "TCP", "targetPort": 80}
    assert spec["ports"][1]["targetPort"] == "metrics"


def test_nodeport_and_client_ip_service_defaults():
    spec = defaults.apply_defaults(service({"port": 80, "targetPort": 0}, type="NodePort",
                                           sessionAffinity="ClientIP"))["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert spec["ports"][0]["targetPort"] == 80
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_endpoints_ports_default_to_tcp():
    ep = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
          "subsets": [{"addresses": [{"ip": "10.42.0.5"}], "ports": [{"port": 80}]}]}
    assert defaults.apply_defaults(ep)["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]


def test_secret_string_data_is_merged_into_data():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
              "data": {"user": base64.b64encode(b"old").decode(), "keep": "a2VlcA=="},
              "stringData": {"user": "admin", "password": "s3cr3t"}}
    out = defaults.apply_defaults(secret)
    assert "stringData" not in out
    assert out["type"] == "Opaque"
    assert base64.b64decode(out["data"]["user"]) == b"admin"  # stringData wins, as in Kubernetes
    assert base64.b64decode(out["data"]["password"]) == b"s3cr3t"
    assert out["data"]["keep"] == "a2VlcA=="


def test_pvc_defaults_volume_mode():
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    assert defaults.apply_defaults(pvc)["spec"]["volumeMode"] == "Filesystem"


def test_namespace_gets_its_name_label_and_no_namespace():
    ns = defaults.apply_defaults({"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": "shop", "namespace": "default"}})
    assert ns["metadata"] == {"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop"}}


def test_namespaced_objects_default_to_the_default_namespace():
    assert defaults.apply_defaults(pod())["metadata"]["namespace"] == "default"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}}
    assert defaults.apply_defaults(cm)["metadata"]["namespace"] == "shop"
    no_meta = defaults.apply_defaults({"apiVersion": "v1", "kind": "ConfigMap"})
    assert no_meta["metadata"] == {"namespace": "default"}


def test_nulls_are_dropped_like_kubernetes_round_trips_do():
    p = pod()
    p["metadata"]["creationTimestamp"] = None
    p["spec"]["volumes"] = None
    p["spec"]["restartPolicy"] = None
    out = defaults.apply_defaults(p)
    assert "creationTimestamp" not in out["metadata"]
    assert "volumes" not in out["spec"]
    assert out["spec"]["restartPolicy"] == "Always"


ALL_KINDS = [
    deployment(),
    deployment(strategy={"type": "Recreate"}),
    pod({"name": "a", "image": "x", "ports": [{"containerPort": 1}],
         "livenessProbe": {"httpGet": {"port": 1}}, "resources": {"limits": {"cpu": "1"}}},
        volumes=[{"name": "v"}, {"name": "s", "secret": {"secretName": "s"}}], hostNetwork=True),
    service({"port": 80}, type="LoadBalancer", sessionAffinity="ClientIP"),
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "b"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}},
    {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e"},
     "subsets": [{"ports": [{"port": 1}]}]},
    {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "spec": {}},
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}},
    {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev"},
     "involvedObject": {"kind": "Pod", "name": "p"}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}},
]


@pytest.mark.parametrize("obj", ALL_KINDS, ids=lambda o: o["kind"])
def test_defaulting_is_idempotent_pure_and_adds_no_status(obj):
    before = copy.deepcopy(obj)
    once = defaults.apply_defaults(obj)
    assert obj == before  # the input is never mutated
    assert defaults.apply_defaults(once) == once
    assert "status" not in once
    for key in ("uid", "creationTimestamp", "resourceVersion", "generation"):
        assert key not in once["metadata"]


def test_status_is_left_alone():
    p = pod()
    p["status"] = {"phase": "Running", "podIP": "10.42.0.9"}
    assert defaults.apply_defaults(p)["status"] == {"phase": "Running", "podIP": "10.42.0.9"}


def test_malformed_bodies_are_bad_requests():
    with pytest.raises(errors.BadRequest, match="JSON object"):
        defaults.apply_defaults([])  # type: ignore[arg-type]
    with pytest.raises(errors.BadRequest, match="'kind' is missing"):
        defaults.apply_defaults({"apiVersion": "v1"})
    with pytest.raises(errors.BadRequest, match='no kind "Pud"'):
        defaults.apply_defaults({"apiVersion": "v1", "kind": "Pud"})


def test_wrong_shapes_do_not_crash_defaulting():
    for spec in ("x", [], {"containers": "x"}, {"containers": ["x", {"ports": "y"}]},
                 {"template": {"spec": {"volumes": [None, 3]}}}):
        for kind, api in (("Pod", "v1"), ("Deployment", "apps/v1"), ("Service", "v1")):
            defaults.apply_defaults({"apiVersion": api, "kind": kind, "metadata": {"name": "x"},
                                     "spec": spec})


def test_preserve_allocated_keeps_cluster_ip_and_node_ports_on_update():
    old = defaults.apply_defaults(service({"port": 80, "nodePort": 30080}, type="NodePort",
                                          clusterIP="10.43.0.10", clusterIPs=["10.43.0.10"]))
    new = service({"port": 80}, type="NodePort")
    kept = defaults.preserve_allocated(new, old)
    assert kept["spec"]["clusterIP"] == "10.43.0.10"
    assert kept["spec"]["clusterIPs"] == ["10.43.0.10"]
    assert kept["spec"]["ports"][0]["nodePort"] == 30080
    assert "clusterIP" not in new["spec"]  # input untouched
    assert defaults.preserve_allocated(pod(), pod()) == pod()


def test_kubectl_create_dry_run_yaml_defaults_cleanly():
    text = """
apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels: {app: web}
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels: {app: web}
    spec:
      containers:
      - image: nginx
        name: nginx
        resources: {}
status: {}
"""
    out = defaults.apply_defaults(yaml.safe_load(text))
    assert out["spec"]["strategy"]["type"] == "RollingUpdate"
    assert out["status"] == {}
    assert "creationTimestamp" not in out["spec"]["template"]["metadata"]
