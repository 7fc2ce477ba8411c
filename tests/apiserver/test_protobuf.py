"""Kubernetes protobuf request bodies: the decoder against the JSON shape, and the real
kubectl (which sends protobuf for its typed commands) against a real shoal daemon."""

from __future__ import annotations

import base64
import json
import re
import secrets
from typing import Any

import pytest

from shoal.apiserver import protobuf as pb
from shoal.apiserver.k8sproto import apps_v1_pb2, core_v1_pb2, meta_v1_pb2, runtime_pb2

T1 = "2024-05-06T07:08:09Z"
T2 = "2024-05-06T07:09:10Z"
META = {"name": "x", "namespace": "default", "uid": "6f1d6a4e-0000-4000-8000-000000000001",
        "resourceVersion": "42", "generation": 3, "creationTimestamp": T1,
        "labels": {"app": "web"}, "annotations": {"note": "ü ∑ text"}}

# Every kind shoal serves, as Kubernetes renders it in JSON (Go values that are structs
# always appear, e.g. "status": {}; zero Go values with omitempty never do).
KINDS: dict[str, dict[str, Any]] = {
    "Namespace": {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"},
                     "finalizers": ["example.com/hold"]},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    },
    "Pod": {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {**META, "generateName": "web-", "deletionTimestamp": T2,
                     "deletionGracePeriodSeconds": 0,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": "web-1", "uid": "u-1", "controller": True,
                                          "blockOwnerDeletion": True}]},
        "spec": {
            "containers": [{
                "name": "main", "image": "busybox:1.36", "command": ["sh", "-c"],
                "args": ["sleep 3600"], "workingDir": "/w",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "A", "value": "1"},
                        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "b", "optional": False}}},
                        {"name": "C", "valueFrom": {"secretKeyRef": {"name": "s", "key": "c"}}},
                        {"name": "D", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}],
                "envFrom": [{"prefix": "X_", "configMapRef": {"name": "cm"}}],
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "100m"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                                  "initialDelaySeconds": 3, "periodSeconds": 10, "failureThreshold": 3},
                "readinessProbe": {"tcpSocket": {"port": 8080}, "timeoutSeconds": 1},
                "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}},
                "terminationMessagePath": "/dev/termination-log",
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {"runAsUser": 0, "privileged": False, "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
            "initContainers": [{"name": "init", "image": "busybox", "resources": {}}],
            "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "cfg", "configMap": {"name": "cm", "defaultMode": 420,
                                                      "items": [{"key": "a", "path": "a.txt"}]}},
                        {"name": "sec", "secret": {"secretName": "s", "optional": True}},
                        {"name": "claim", "persistentVolumeClaim": {"claimName": "pvc"}}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 0,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "sa", "nodeName": "local",
            "automountServiceAccountToken": False, "hostname": "web",
            "securityContext": {"runAsNonRoot": True, "fsGroup": 2000},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule",
                             "tolerationSeconds": 30}],
            "schedulerName": "default-scheduler", "priority": 0,
        },
        "status": {
            "phase": "Running", "podIP": "10.230.0.5", "podIPs": [{"ip": "10.230.0.5"}],
            "hostIP": "127.0.0.1", "startTime": T1, "qosClass": "Burstable",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": T2}],
            "containerStatuses": [{"name": "main", "state": {"running": {"startedAt": T1}},
                                   "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                                                "startedAt": T1, "finishedAt": T2}},
                                   "ready": True, "restartCount": 2, "image": "busybox:1.36",
                                   "imageID": "sha256:abc", "containerID": "runc://abc",
                                   "started": True}],
        },
    },
    "Service": {
        "apiVersion": "v1", "kind": "Service",
        "metadata": META,
        "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http",
                            "nodePort": 31080, "appProtocol": "http"},
                           {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": 9090}],
                 "selector": {"app": "web"}, "clusterIP": "10.231.0.10", "clusterIPs": ["10.231.0.10"],
                 "type": "NodePort", "sessionAffinity": "None", "ipFamilies": ["IPv4"],
                 "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster",
                 "externalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}},
    },
    "Endpoints": {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": META,
        "subsets": [{"addresses": [{"ip": "10.230.0.5", "nodeName": "local",
                                    "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-1",
                                                  "uid": "u-2"}}],
                     "notReadyAddresses": [{"ip": "10.230.0.6"}],
                     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}],
    },
    "ConfigMap": {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default"},
        "data": {"a": "b", "multi": "line 1\nline 2\n", "empty": ""},
        "binaryData": {"blob": base64.b64encode(bytes(range(256))).decode()},
        "immutable": False,
    },
    "Secret": {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "namespace": "default"},
        "data": {"p": base64.b64encode(b"q").decode(), "raw": base64.b64encode(b"\x00\xff\x80").decode()},
        "type": "Opaque", "immutable": True,
    },
    "ServiceAccount": {
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "sa", "namespace": "default"},
        "secrets": [{"name": "sa-token"}], "imagePullSecrets": [{"name": "regcred"}],
        "automountServiceAccountToken": False,
    },
    "Event": {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web-1.17c", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1", "uid": "u-2",
                           "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec.containers{main}"},
        "reason": "Pulling", "message": "Pulling image \"busybox\"",
        "source": {"component": "kubelet", "host": "local"},
        "firstTimestamp": T1, "lastTimestamp": T2, "count": 3, "type": "Normal",
        "eventTime": "2024-05-06T07:08:09.123456Z", "action": "Pull",
        "reportingComponent": "kubelet", "reportingInstance": "local",
    },
    "PersistentVolumeClaim": {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "pvc", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": "", "volumeMode": "Filesystem",
                 "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}},
        "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}},
    },
    "Deployment": {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {**META, "managedFields": [{
            "manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1", "time": T1,
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
        "spec": {
            "replicas": 0, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "busybox", "image": "busybox", "resources": {}}]}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600, "minReadySeconds": 5,
        },
        "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2,
                   "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": T1,
                                   "lastTransitionTime": T2, "reason": "MinimumReplicasAvailable",
                                   "message": "Deployment has minimum availability."}]},
    },
    "ReplicaSet": {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {**META, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                  "name": "web", "uid": "u-3", "controller": True}]},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {}}]}}},
        "status": {"replicas": 2, "readyReplicas": 1},
    },
    "DeleteOptions": {
        "apiVersion": "v1", "kind": "DeleteOptions",
        "gracePeriodSeconds": 0, "propagationPolicy": "Foreground",
        "preconditions": {"uid": "u-1", "resourceVersion": "5"}, "dryRun": ["All"],
    },
    "Scale": {
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3},
        "status": {"replicas": 2, "selector": "app=web"},
    },
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_round_trips_to_its_json_form(kind):
    obj = KINDS[kind]
    body = pb.encode_body(obj)
    assert body.startswith(b"k8s\x00")
    assert pb.decode_body(body) == obj


def _envelope(api_version: str, kind: str, msg) -> bytes:
    unknown = runtime_pb2.Unknown(raw=msg.SerializeToString())
    unknown.typeMeta.apiVersion, unknown.typeMeta.kind = api_version, kind
    return pb.MAGIC + unknown.SerializeToString()


def test_go_values_follow_omitempty_and_pointers_keep_zero():
    # As Go writes it: value fields always on the wire (even "" and 0), pointers only when set.
    dep = apps_v1_pb2.Deployment()
    for m in (dep.metadata,):
        m.name, m.namespace, m.generateName, m.generation = "web", "", "", 0
        m.creationTimestamp.SetInParent()  # the zero time: Go writes an empty message
    dep.spec.replicas = 0
    dep.spec.minReadySeconds = 0
    dep.spec.paused = False
    dep.spec.template.spec.hostNetwork = False
    c = dep.spec.template.spec.containers.add(name="c", image="busybox", workingDir="")
    c.resources.SetInParent()
    c.securityContext.runAsUser = 0
    c.securityContext.runAsNonRoot = False
    got = pb.decode_body(_envelope("apps/v1", "Deployment", dep))
    assert got == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 0,
                 "template": {"metadata": {},
                              "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {},
                                                       "securityContext": {"runAsUser": 0,
                                                                           "runAsNonRoot": False}}]}},
                 "strategy": {}},
        "status": {},
    }
    # A pointer that is absent stays absent: defaulting (replicas: 1) is the server's job.
    dep.spec.ClearField("replicas")
    assert "replicas" not in pb.decode_body(_envelope("apps/v1", "Deployment", dep))["spec"]


def test_int_or_string_quantity_bytes_and_times_render_as_json():
    svc = core_v1_pb2.Service()
    svc.metadata.name = "s"
    p = svc.spec.ports.add(port=80)
    p.targetPort.type, p.targetPort.strVal = 1, "http"
    q = svc.spec.ports.add(port=81)
    q.targetPort.type, q.targetPort.intVal = 0, 8081
    got = pb.decode_body(_envelope("v1", "Service", svc))
    assert [x["targetPort"] for x in got["spec"]["ports"]] == ["http", 8081]

    sec = core_v1_pb2.Secret(type="Opaque")
    sec.data["k"] = b"\x00\x01binary"
    sec.metadata.creationTimestamp.seconds = 1_700_000_000
    sec.metadata.creationTimestamp.nanos = 999_000_000  # Time has second precision in JSON
    got = pb.decode_body(_envelope("v1", "Secret", sec))
    assert got["data"] == {"k": base64.b64encode(b"\x00\x01binary").decode()}
    assert got["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"

    ev = core_v1_pb2.Event(count=2)
    ev.eventTime.seconds, ev.eventTime.nanos = 1_700_000_000, 5_000
    ev.metadata.name = "e"
    got = pb.decode_body(_envelope("v1", "Event", ev))
    assert got["eventTime"] == "2023-11-14T22:13:20.000005Z"
    assert got["count"] == 2 and isinstance(got["count"], int)
    assert "firstTimestamp" not in got  # zero Time: null in Go's JSON, left out here

    pvc = core_v1_pb2.PersistentVolumeClaim()
    pvc.spec.resources.requests["storage"].string = "10Gi"
    assert pb.decode_body(_envelope("v1", "PersistentVolumeClaim", pvc))["spec"]["resources"] == {
        "requests": {"storage": "10Gi"}}


def test_int64_stays_a_number():
    opts = meta_v1_pb2.DeleteOptions(gracePeriodSeconds=2**40)
    got = pb.decode_body(_envelope("meta.k8s.io/v1", "DeleteOptions", opts))
    assert got["gracePeriodSeconds"] == 2**40
    assert json.dumps(got).count('"gracePeriodSeconds": 1099511627776') == 1


def test_delete_options_read_in_any_group_version():
    body = _envelope("apps/v1", "DeleteOptions", meta_v1_pb2.DeleteOptions(propagationPolicy="Orphan"))
    assert pb.decode_body(body) == {"apiVersion": "apps/v1", "kind": "DeleteOptions",
                                    "propagationPolicy": "Orphan"}


# Bytes kubectl 1.32 sent for `kubectl create configmap cm --from-literal=a=b` (from its
# -v=10 log): every Go value field is on the wire, empty.
KUBECTL_CONFIGMAP = bytes.fromhex(
    "6b3873000a0f0a0276311209436f6e66" "69674d6170121c0a120a02636d12001a"
    "0022002a0032003800420012060a0161" "1201621a002200"
)


def test_real_kubectl_configmap_bytes():
    assert pb.decode_body(KUBECTL_CONFIGMAP) == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}}


@pytest.mark.parametrize("body, words", [
    (b"{\"kind\": \"ConfigMap\"}", "must start with the 4 bytes"),
    (b"k8s\x00\xff\xff\xff", "envelope (runtime.Unknown) is malformed"),
    (pb.MAGIC + runtime_pb2.Unknown(raw=b"").SerializeToString(), "no typeMeta.kind"),
    (_envelope("v1", "Gadget", core_v1_pb2.ConfigMap()), "kind 'Gadget' in apiVersion 'v1'"),
    (_envelope("example.com/v1", "Widget", core_v1_pb2.ConfigMap()),
     "kind 'Widget' in apiVersion 'example.com/v1'"),
    (pb.MAGIC + runtime_pb2.Unknown(typeMeta=runtime_pb2.TypeMeta(apiVersion="v1", kind="ConfigMap"),
                                    raw=b"\x0a\xff").SerializeToString(), "ConfigMap (v1) is malformed"),
    (pb.MAGIC + runtime_pb2.Unknown(typeMeta=runtime_pb2.TypeMeta(apiVersion="v1", kind="ConfigMap"),
                                    contentEncoding="gzip").SerializeToString(), "contentEncoding 'gzip'"),
])
def test_malformed_bodies_name_the_problem(body, words):
    with pytest.raises(pb.MalformedBody, match=re.escape(words)) as info:
        pb.decode_body(body)
    assert info.value.code == 400
    assert info.value.to_status()["reason"] == "BadRequest"


def test_encode_names_the_field_that_does_not_fit():
    with pytest.raises(pb.MalformedBody, match=r"spec\.replicas: expected an integer"):
        pb.encode_body({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": "two"}})
    with pytest.raises(pb.MalformedBody, match=r"spec\.bogus: unknown field in DeploymentSpec"):
        pb.encode_body({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"bogus": 1}})


def test_durations_render_like_go():
    assert [pb.format_duration(n) for n in (0, 1500, 300_000_000, 90 * 10**9, 3_723_500_000_000)] == \
        ["0s", "1.5µs", "300ms", "1m30s", "1h2m3.5s"]


def test_schema_shares_the_descriptor_pool_with_envoy_protos():
    from envoy.config.core.v3 import address_pb2  # noqa: F401  (xds-protos)
    from envoy.service.discovery.v3 import ads_pb2_grpc  # noqa: F401
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    assert pool.FindMessageTypeByName("k8s.io.api.core.v1.Pod") is core_v1_pb2.Pod.DESCRIPTOR
    assert pool.FindMessageTypeByName("envoy.config.core.v3.Address").full_name == "envoy.config.core.v3.Address"
    pod_file = pool.FindFileContainingSymbol("k8s.io.api.core.v1.Pod")
    assert pod_file.name == "shoal/apiserver/k8sproto/core_v1.proto"
    assert pod_file.package == "k8s.io.api.core.v1"


# -- the real kubectl against a real daemon --------------------------------------------


def _request_bodies(log: str) -> list[tuple[str, dict[str, Any]]]:
    """The request bodies in a `kubectl -v=10` log, as (wire format, decoded object):
    protobuf bodies are printed as hex dumps and decoded here by `decode_body`."""
    bodies = []
    for block in re.findall(r'"Request Body" body=<\n(.*?)\n\s*>', log, re.S):
        lines = block.splitlines()
        if re.match(r"\s*[0-9a-f]{8}  ", lines[0]):
            data = bytearray()
            for line in lines:
                data += bytes.fromhex(line.strip()[8:58].replace(" ", ""))
            bodies.append(("protobuf", pb.decode_body(bytes(data))))
        else:
            bodies.append(("json", json.loads("\n".join(lines))))
    return bodies


def _without_nulls(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _without_nulls(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_without_nulls(v) for v in obj]
    return obj


def _contains(big: Any, small: Any) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _contains(big[k], v) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(big) == len(small) and all(map(_contains, big, small))
    return big == small


TYPED_COMMANDS = [
    ("deployment", "web", ["create", "deployment", "web", "--image=busybox", "--replicas=2"]),
    ("configmap", "cm", ["create", "configmap", "cm", "--from-literal=a=b"]),
    ("secret", "s", ["create", "secret", "generic", "s", "--from-literal=p=q"]),
    ("serviceaccount", "sa", ["create", "serviceaccount", "sa"]),
    ("service", "web", ["expose", "deployment", "web", "--port=80"]),
    ("service", "api", ["create", "service", "clusterip", "api", "--tcp=8080:80"]),
    ("configmap", "bin", ["create", "configmap", "bin", "--from-file=blob={blob}"]),
    ("pod", "p", ["run", "p", "--image=busybox", "--", "sleep", "3600"]),
]


@pytest.mark.slow
def test_kubectl_typed_commands_send_protobuf_that_shoal_reads_exactly(shoal, tmp_path):
    ns = f"pb-{secrets.token_hex(3)}"
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)))  # not UTF-8: kubectl puts it in binaryData
    out = shoal.kubectl("-v=10", "create", "namespace", ns)
    assert f"namespace/{ns} created" in out.stdout
    assert _request_bodies(out.stderr) == [("protobuf", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "spec": {}, "status": {}})]
    try:
        for resource, name, args in TYPED_COMMANDS:
            args = [a.format(blob=blob) for a in args]
            # What kubectl would have sent as JSON, then the same command for real.
            cut = args.index("--") if "--" in args else len(args)
            dry = [*args[:cut], "--dry-run=client", "-o", "json", *args[cut:]]
            expected = json.loads(shoal.kubectl("-n", ns, *dry).stdout)
            out = shoal.kubectl("-v=10", "-n", ns, *args)
            bodies = _request_bodies(out.stderr)
            assert len(bodies) == 1, f"{args}: expected one request body, got {bodies}"
            wire, sent = bodies[0]
            # kubectl's typed `create` commands speak protobuf; expose and run send JSON
            assert wire == ("protobuf" if args[0] == "create" else "json"), args
            if wire == "protobuf":  # exactly the JSON kubectl would have sent
                assert sent == _without_nulls(expected), args
            stored = json.loads(shoal.kubectl("-n", ns, "get", resource, name, "-o", "json").stdout)
            assert _contains(stored, _without_nulls({k: v for k, v in expected.items() if k != "status"})), \
                f"{resource}/{name} stored differs from what kubectl sent: {stored}"

        dep = json.loads(shoal.kubectl("-n", ns, "get", "deploy", "web", "-o", "json").stdout)
        assert dep["spec"]["replicas"] == 2
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"
        cm = json.loads(shoal.kubectl("-n", ns, "get", "cm", "cm", "-o", "json").stdout)
        assert cm["data"] == {"a": "b"}
        sec = json.loads(shoal.kubectl("-n", ns, "get", "secret", "s", "-o", "json").stdout)
        assert base64.b64decode(sec["data"]["p"]) == b"q"
        svc = json.loads(shoal.kubectl("-n", ns, "get", "svc", "web", "-o", "json").stdout)
        assert svc["spec"]["ports"][0]["port"] == 80 and svc["spec"]["selector"] == {"app": "web"}
        binary = json.loads(shoal.kubectl("-n", ns, "get", "cm", "bin", "-o", "json").stdout)
        assert base64.b64decode(binary["binaryData"]["blob"]) == bytes(range(256))
        api_svc = json.loads(shoal.kubectl("-n", ns, "get", "svc", "api", "-o", "json").stdout)
        assert api_svc["spec"]["ports"][0]["targetPort"] == 80 and api_svc["spec"]["ports"][0]["port"] == 8080
        pod = json.loads(shoal.kubectl("-n", ns, "get", "pod", "p", "-o", "json").stdout)
        assert pod["spec"]["containers"][0]["args"] == ["sleep", "3600"]

        for resource, name, _ in reversed(TYPED_COMMANDS):
            extra = ["--grace-period=0", "--force"] if resource == "pod" else []
            out = shoal.kubectl("-n", ns, "delete", resource, name, "--wait=false", *extra)
            assert "deleted" in out.stdout
            gone = shoal.kubectl("-n", ns, "get", resource, name, "-o", "json", check=False)
            if resource != "deployment":  # a deployment may wait for its dependents
                assert gone.returncode != 0 and "NotFound" in gone.stderr, gone.stdout
    finally:
        shoal.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.mark.slow
def test_protobuf_delete_options_and_malformed_bodies_over_http(shoal, api):
    ns_body = pb.encode_body({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"pb-{secrets.token_hex(3)}"}})
    r = api.post("/api/v1/namespaces", content=ns_body, headers={"Content-Type": pb.MEDIA_TYPE})
    assert r.status_code == 201, r.text
    ns = r.json()["metadata"]["name"]
    try:
        cm = pb.encode_body({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                             "data": {"k": "v"}})
        r = api.post(f"/api/v1/namespaces/{ns}/configmaps", content=cm, headers={"Content-Type": pb.MEDIA_TYPE})
        assert r.status_code == 201, r.text
        uid = r.json()["metadata"]["uid"]

        # DeleteOptions in protobuf are read: a wrong UID precondition is a conflict
        wrong = pb.encode_body({"apiVersion": "v1", "kind": "DeleteOptions",
                                "preconditions": {"uid": "not-" + uid}})
        r = api.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/c", content=wrong,
                        headers={"Content-Type": pb.MEDIA_TYPE})
        assert r.status_code == 409 and "Precondition failed" in r.json()["message"]
        right = pb.encode_body({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                                "preconditions": {"uid": uid}})
        r = api.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/c", content=right,
                        headers={"Content-Type": pb.MEDIA_TYPE})
        assert r.status_code == 200, r.text
        assert api.get(f"/api/v1/namespaces/{ns}/configmaps/c").status_code == 404

        # malformed bodies: a 400 Status naming the problem, and the server keeps serving
        for bad, words in [(b"k8s\x00\xff\xff\xff", "runtime.Unknown) is malformed"),
                           (b"\x00\x01\x02", "must start with the 4 bytes")]:
            r = api.post(f"/api/v1/namespaces/{ns}/configmaps", content=bad,
                         headers={"Content-Type": pb.MEDIA_TYPE})
            status = r.json()
            assert r.status_code == 400 and status["kind"] == "Status" and status["reason"] == "BadRequest"
            assert words in status["message"]
        r = api.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/none", content=b"k8s\x00\x0a",
                        headers={"Content-Type": pb.MEDIA_TYPE})
        assert r.status_code == 400 and "malformed" in r.json()["message"]
        r = api.post(f"/api/v1/namespaces/{ns}/configmaps", content=b"\xa1",
                     headers={"Content-Type": "application/cbor"})
        assert r.status_code == 415
        assert api.get(f"/api/v1/namespaces/{ns}").status_code == 200
    finally:
        api.delete(f"/api/v1/namespaces/{ns}")
