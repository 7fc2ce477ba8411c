"""Validation: every message names the field path and what was expected, as Kubernetes'.

Objects go through `apply_defaults` first, as the API server does."""

from __future__ import annotations

import base64
import copy
import time

import pytest
import yaml

from shoal.api import defaults, errors, validation


def problems(obj, old=None, *, default=True) -> list[str]:
    """The messages validate() reports ([] when valid)."""
    if default:
        obj = defaults.apply_defaults(obj)
        old = defaults.apply_defaults(old) if old is not None else None
    try:
        validation.validate(obj, old)
    except errors.Invalid as exc:
        for e in exc.errors:  # every error names a field path
            assert e.path and str(e).startswith(e.path + ": ")
        assert [c["field"] for c in exc.details["causes"]] == [e.path for e in exc.errors]
        return [str(e) for e in exc.errors]
    return []


def assert_problem(obj, expected: str, old=None, **kw) -> None:
    found = problems(obj, old, **kw)
    assert any(expected in p for p in found), f"{expected!r} not in {found}"


def pod(*containers, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"containers": list(containers) or [{"name": "app", "image": "nginx:1.25"}],
                     **spec}}


def container(**fields):
    return {"name": "app", "image": "nginx:1.25", **fields}


def deployment(spec_patch=None, **container_fields):
    d = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [container(**container_fields)]}}}}
    d["spec"].update(spec_patch or {})
    return d


def service(*ports, **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": list(ports), **spec}}


# -- realistic objects validate cleanly ----------------------------------------------------

DOCS = """
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {istio-injection: enabled}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: frontend
  namespace: shop
  labels: {app.kubernetes.io/name: frontend, tier: web}
  annotations: {deployment.kubernetes.io/revision: "3", example.com/owner: "team-a"}
spec:
  replicas: 3
  selector:
    matchLabels: {app: frontend}
    matchExpressions:
    - {key: tier, operator: In, values: [web, edge]}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: frontend, tier: web}
      annotations: {prometheus.io/scrape: "true"}
    spec:
      serviceAccountName: frontend
      securityContext: {runAsNonRoot: true, runAsUser: 1000, fsGroup: 2000}
      initContainers:
      - name: migrate
        image: registry.local/shop/migrate:v2
        command: ["/migrate", "--wait"]
      containers:
      - name: web
        image: registry.local/shop/frontend:v1.4.2
        args: ["--port=8080"]
        ports:
        - {name: http, containerPort: 8080}
        - {name: metrics, containerPort: 9090, protocol: TCP}
        env:
        - {name: LOG_LEVEL, value: info}
        - name: DB_PASSWORD
          valueFrom: {secretKeyRef: {name: db, key: password}}
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        - name: MEM_LIMIT
          valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
        envFrom:
        - configMapRef: {name: frontend-config}
        resources:
          requests: {cpu: 100m, memory: 64Mi}
          limits: {cpu: 1, memory: 128Mi, ephemeral-storage: 1Gi}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          initialDelaySeconds: 2
          periodSeconds: 5
        livenessProbe:
          tcpSocket: {port: 8080}
          failureThreshold: 5
        startupProbe:
          exec: {command: [cat, /tmp/ready]}
        lifecycle:
          preStop: {exec: {command: [sleep, "5"]}}
        volumeMounts:
        - {name: config, mountPath: /etc/frontend, readOnly: true}
        - {name: cache, mountPath: /var/cache/frontend}
        - {name: data, mountPath: /data}
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
          readOnlyRootFilesystem: true
      - name: log-shipper
        image: busybox
        command: [sh, -c, "tail -F /var/cache/frontend/access.log"]
        volumeMounts:
        - {name: cache, mountPath: /var/cache/frontend}
        resources:
          limits: {cpu: 0.25, memory: 32Mi}
      volumes:
      - name: config
        configMap:
          name: frontend-config
          items: [{key: app.yaml, path: app.yaml}]
      - name: cache
        emptyDir: {sizeLimit: 500Mi}
      - name: data
        persistentVolumeClaim: {claimName: frontend-data}
      tolerations:
      - {key: example.com/dedicated, operator: Exists, effect: NoSchedule}
      nodeSelector: {kubernetes.io/os: linux}
---
apiVersion: v1
kind: Service
metadata:
  name: frontend
  namespace: shop
spec:
  type: NodePort
  selector: {app: frontend}
  ports:
  - {name: http, port: 80, targetPort: http, nodePort: 30080}
  - {name: metrics, port: 9090, targetPort: 9090}
---
apiVersion: v1
kind: Service
metadata: {name: db-headless, namespace: shop}
spec:
  clusterIP: None
  selector: {app: db}
---
apiVersion: v1
kind: Service
metadata: {name: payments, namespace: shop}
spec:
  type: ExternalName
  externalName: payments.example.com
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: shop}
type: Opaque
stringData:
  username: admin
  password: "t0p-s3cret"
data:
  ca.crt: LS0tLS1CRUdJTg==
---
apiVersion: v1
kind: Secret
metadata: {name: tls, namespace: shop}
type: kubernetes.io/tls
data: {tls.crt: Y2VydA==, tls.key: a2V5}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: frontend-config, namespace: shop}
data:
  app.yaml: |
    listen: 8080
  LOG_FORMAT: json
binaryData:
  logo.png: iVBORw0KGgo=
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: frontend-data, namespace: shop}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: local-path
  resources:
    requests: {storage: 2Gi}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: frontend, namespace: shop}
imagePullSecrets: [{name: registry}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: legacy-db, namespace: shop}
subsets:
- addresses: [{ip: 10.42.0.7, hostname: db-0}]
  notReadyAddresses: [{ip: 10.42.0.8}]
  ports: [{name: sql, port: 5432}, {name: admin, port: 8080}]
---
apiVersion: v1
kind: Event
metadata: {name: frontend-7d9f.17a8b, namespace: shop}
involvedObject: {kind: Pod, name: frontend-7d9f, namespace: shop, apiVersion: v1}
reason: Pulled
message: Successfully pulled image
type: Normal
count: 1
firstTimestamp: "2024-05-01T10:00:00Z"
lastTimestamp: "2024-05-01T10:00:00Z"
source: {component: kubelet}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: frontend-7d9f, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: frontend, pod-template-hash: 7d9f}}
  template:
    metadata: {labels: {app: frontend, pod-template-hash: 7d9f}}
    spec:
      containers: [{name: web, image: "registry.local/shop/frontend@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}]
---
apiVersion: v1
kind: Pod
metadata:
  generateName: worker-
  namespace: shop
  creationTimestamp: null
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: worker, uid: 3f0c9d2e-1111-2222-3333-444455556666, controller: true}
spec:
  initContainers:
  - name: proxy
    image: envoyproxy/envoy:v1.30
    restartPolicy: Always
    readinessProbe: {httpGet: {port: 15021, path: /healthz/ready}}
  containers:
  - {name: worker, image: busybox, command: [sleep, "3600"]}
  restartPolicy: OnFailure
  dnsPolicy: None
  dnsConfig: {nameservers: [10.43.0.10], searches: [shop.svc.cluster.local]}
status:
  phase: Running
  podIP: 10.42.0.12
  startTime: "2024-05-01T10:00:00Z"
  conditions: [{type: Ready, status: "True", lastTransitionTime: "2024-05-01T10:00:03Z"}]
  containerStatuses:
  - name: worker
    ready: true
    restartCount: 0
    image: busybox
    imageID: ""
    state: {running: {startedAt: "2024-05-01T10:00:02Z"}}
"""


@pytest.mark.parametrize("doc", list(yaml.safe_load_all(DOCS)),
                         ids=lambda d: f"{d['kind']}/{d['metadata'].get('name') or 'generated'}")
def test_realistic_objects_validate_cleanly_after_defaulting(doc):
    assert problems(doc) == []


# -- the envelope -----------------------------------------------------------------------------

def test_bodies_without_a_known_kind_are_bad_requests():
    with pytest.raises(errors.BadRequest, match="JSON object"):
        validation.validate("pod")  # type: ignore[arg-type]
    with pytest.raises(errors.BadRequest, match="'apiVersion' is missing"):
        validation.validate({"kind": "Pod"})
    with pytest.raises(errors.BadRequest, match='no kind "Pod" is registered for version "apps/v1"'):
        validation.validate({"apiVersion": "apps/v1", "kind": "Pod", "metadata": {"name": "x"}})


def test_invalid_carries_kind_name_group_and_every_cause():
    with pytest.raises(errors.Invalid) as exc:
        validation.validate(defaults.apply_defaults(deployment({"replicas": -1}, image="")))
    err = exc.value
    assert err.code == 422
    assert err.details["kind"] == "Deployment" and err.details["name"] == "web"
    assert err.details["group"] == "apps"
    assert str(err).startswith('Deployment "web" is invalid: [')
    fields = {c["field"] for c in err.details["causes"]}
    assert fields == {"spec.replicas", "spec.template.spec.containers[0].image"}


# -- structure: unknown fields and types ------------------------------------------------------

@pytest.mark.parametrize("mutate,path", [
    (lambda d: d.update(spce={}), "spce"),
    (lambda d: d["metadata"].update(lables={"a": "b"}), "metadata.lables"),
    (lambda d: d["spec"].update(replica=2), "spec.replica"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imagee="x"),
     "spec.template.spec.containers[0].imagee"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(
        livenessProbe={"httpGet": {"port": 80, "prot": 1}}),
     "spec.template.spec.containers[0].livenessProbe.httpGet.prot"),
    (lambda d: d["spec"]["selector"].update(app="web"), "spec.selector.app"),
    (lambda d: d.update(status={"replicas": 1, "ready": 1}), "status.ready"),
])
def test_unknown_fields_are_rejected_with_their_full_path(mutate, path):
    d = deployment()
    mutate(d)
    assert f"{path}: Unknown field: field not declared in schema" in problems(d)


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: d["spec"].update(replicas="three"), "spec.replicas: Invalid value: \"three\": expected integer"),
    (lambda d: d["spec"].update(replicas=2.5), "spec.replicas: Invalid value: 2.5: expected integer"),
    (lambda d: d["spec"].update(replicas=True), "spec.replicas: Invalid value: True: expected integer"),
    (lambda d: d["spec"].update(paused="yes"), "spec.paused: Invalid value: \"yes\": expected boolean"),
    (lambda d: d["spec"]["template"]["spec"].update(containers={"name": "x"}),
     "spec.template.spec.containers: Invalid value: \"object\": expected array"),
    (lambda d: d["metadata"].update(labels={"version": 1.0}),
     "metadata.labels[version]: Invalid value: 1.0: expected string"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(args="--x"),
     "spec.template.spec.containers[0].args: Invalid value: \"--x\": expected array"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(
        resources={"limits": {"memory": "64Mx"}}),
     "spec.template.spec.containers[0].resources.limits[memory]: Invalid value: \"64Mx\": quantities must match"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(
        resources={"limits": {"memory": ["64Mi"]}}),
     "resources.limits[memory]: Invalid value: \"array\": expected quantity"),
    (lambda d: d["spec"]["strategy"].update(rollingUpdate={"maxSurge": [1]}) if "strategy" in d["spec"]
     else d["spec"].update(strategy={"rollingUpdate": {"maxSurge": {}}}),
     "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"object\": expected integer or string"),
    (lambda d: d["metadata"].update(creationTimestamp="yesterday"),
     "metadata.creationTimestamp: Invalid value: \"yesterday\": expected date-time string"),
])
def test_type_mismatches_name_the_path_and_the_expected_type(mutate, expected):
    d = deployment()
    mutate(d)
    assert_problem(d, expected, default=False)


def test_kubernetes_leniency_is_kept():
    c = container(resources={"limits": {"cpu": 2, "memory": "128Mi"},
                             "requests": {"cpu": 0.5, "memory": 67108864}},
                  readinessProbe={"httpGet": {"port": "http"}},
                  livenessProbe={"tcpSocket": {"port": 80}},
                  ports=[{"name": "http", "containerPort": 80}])
    p = pod(c, volumes=[{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}}])
    p["metadata"]["creationTimestamp"] = None
    p["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Apply",
                                       "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
    assert problems(p) == []
    assert problems(p, default=False) == []
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "d"},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": 1073741824}}}}
    assert problems(pvc) == []


def test_status_is_checked_structurally():
    p = pod()
    p["status"] = {"phase": 5, "podIp": "10.42.0.1",
                   "containerStatuses": [{"name": "app", "restartCount": "0"}]}
    found = problems(p)
    assert "status.phase: Invalid value: 5: expected string" in found
    assert "status.podIp: Unknown field: field not declared in schema" in found
    assert any(f.startswith("status.containerStatuses[0].restartCount: Invalid value: \"0\"") for f in found)


def test_secret_values_never_appear_in_errors():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
              "data": {"password": "hunter2-not-base64!"}, "stringData": {"pin": 98765}}
    found = problems(secret)
    assert any(f.startswith("data[password]: Invalid value") for f in found)
    assert any(f.startswith("stringData[pin]: Invalid value") for f in found)
    text = " ".join(found)
    assert "hunter2" not in text and "98765" not in text


# -- metadata ---------------------------------------------------------------------------------

def test_name_is_required_unless_generate_name():
    p = pod()
    del p["metadata"]["name"]
    assert_problem(p, "metadata.name: Required value: name or generateName is required")
    p["metadata"]["generateName"] = "web-"
    assert problems(p) == []


@pytest.mark.parametrize("kind,api,name,ok", [
    ("ConfigMap", "v1", "app.config-1", True),
    ("ConfigMap", "v1", "App", False),
    ("ConfigMap", "v1", "a" * 254, False),
    ("Service", "v1", "web-1", True),
    ("Service", "v1", "1web", False),       # DNS-1035: starts with a letter
    ("Service", "v1", "web.shop", False),
    ("Namespace", "v1", "shop", True),
    ("Namespace", "v1", "shop.prod", False),  # DNS-1123 label
    ("Namespace", "v1", "a" * 64, False),
    ("Secret", "v1", "db_password", False),
])
def test_object_names_follow_dns_rules(kind, api, name, ok):
    obj = {"apiVersion": api, "kind": kind, "metadata": {"name": name}}
    if kind == "Service":
        obj["spec"] = {"ports": [{"port": 80}]}
    found = [p for p in problems(obj) if p.startswith("metadata.name")]
    assert (found == []) == ok, found
    if not ok:
        assert "metadata.name: Invalid value" in found[0]


def test_namespace_rules():
    p = defaults.apply_defaults(pod())
    del p["metadata"]["namespace"]
    assert_problem(p, "metadata.namespace: Required value", default=False)
    p["metadata"]["namespace"] = "Shop"
    assert_problem(p, "metadata.namespace: Invalid value: \"Shop\"", default=False)
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "namespace": "b"}}
    assert_problem(ns, "metadata.namespace: Forbidden: not allowed on this type", default=False)


def test_labels_and_annotations():
    p = pod()
    p["metadata"]["labels"] = {"app": "x" * 64, "bad key!": "v", "example.com/ok": "fine",
                               "version": "1.0-beta_2"}
    p["metadata"]["annotations"] = {"Example.COM/Anything": "any value at all", "-bad": "x"}
    found = problems(p)
    assert any(f.startswith("metadata.labels: Invalid value: \"" + "x" * 64 + "\": must be no more "
                            "than 63 characters") for f in found)
    assert any(f.startswith("metadata.labels: Invalid value: \"bad key!\": name part must consist")
               for f in found)
    assert any(f.startswith("metadata.annotations: Invalid value: \"-bad\"") for f in found)
    assert len(found) == 3


def test_owner_references_need_identity_and_one_controller():
    p = pod()
    p["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": True},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "", "controller": True}]
    found = problems(p)
    assert "metadata.ownerReferences[1].uid: Required value" in found
    assert any("Only one reference can have Controller set to true" in f for f in found)


# -- pods -------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,expected", [
    (lambda: pod(**{"containers": []}), "spec.containers: Required value"),
    (lambda: pod(container(), container()), "spec.containers[1].name: Duplicate value: \"app\""),
    (lambda: pod(container(name="App_1")), "spec.containers[0].name: Invalid value: \"App_1\""),
    (lambda: pod(container(name="")), "spec.containers[0].name: Required value"),
    (lambda: pod(container(image="")), "spec.containers[0].image: Required value"),
    (lambda: pod(container(ports=[{"containerPort": 70000}])),
     "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"),
    (lambda: pod(container(ports=[{"containerPort": 80, "protocol": "HTTP"}])),
     "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"TCP\", \"UDP\", \"SCTP\""),
    (lambda: pod(container(ports=[{"containerPort": 80, "name": "http"}, {"containerPort": 81, "name": "http"}])),
     "spec.containers[0].ports[1].name: Duplicate value: \"http\""),
    (lambda: pod(restartPolicy="Sometimes"),
     "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""),
    (lambda: pod(dnsPolicy="None"), "spec.dnsConfig.nameservers: Required value"),
    (lambda: pod(container(livenessProbe={"periodSeconds": 5})),
     "spec.containers[0].livenessProbe: Required value: must specify a handler type"),
    (lambda: pod(container(livenessProbe={"exec": {"command": ["true"]}, "tcpSocket": {"port": 1}})),
     "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"),
    (lambda: pod(container(readinessProbe={"tcpSocket": {"port": 80}, "periodSeconds": -1})),
     "spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 1"),
    (lambda: pod(container(livenessProbe={"tcpSocket": {"port": 80}, "successThreshold": 2})),
     "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"),
    (lambda: pod(container(readinessProbe={"httpGet": {"port": "8080"}})),
     "spec.containers[0].readinessProbe.httpGet.port: Invalid value: \"8080\": must contain at least one letter (a-z)"),
    (lambda: pod(container(readinessProbe={"exec": {}})),
     "spec.containers[0].readinessProbe.exec.command: Required value"),
    (lambda: pod(volumes=[{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]),
     "spec.volumes[1].name: Duplicate value: \"v\""),
    (lambda: pod(volumes=[{"name": "v", "emptyDir": {}, "configMap": {"name": "c"}}]),
     "spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type"),
    (lambda: pod(volumes=[{"name": "s", "secret": {}}]), "spec.volumes[0].secret.secretName: Required value"),
    (lambda: pod(container(volumeMounts=[{"name": "data", "mountPath": "/data"}])),
     "spec.containers[0].volumeMounts[0].name: Not found: \"data\""),
    (lambda: pod(container(volumeMounts=[{"name": "v", "mountPath": "/d"}, {"name": "v", "mountPath": "/d"}]),
                 volumes=[{"name": "v"}]),
     "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d\": must be unique"),
    (lambda: pod(container(env=[{"name": "1BAD", "value": "x"}])),
     "spec.containers[0].env[0].name: Invalid value: \"1BAD\": a valid environment variable name"),
    (lambda: pod(container(env=[{"name": "A", "value": "x",
                                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])),
     "spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty"),
    (lambda: pod(container(env=[{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}])),
     "spec.containers[0].env[0].valueFrom.secretKeyRef.key: Required value"),
    (lambda: pod(container(resources={"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}})),
     "spec.containers[0].resources.requests[cpu]: Invalid value: \"1\": must be less than or equal to cpu limit of 500m"),
    (lambda: pod(container(resources={"requests": {"memory": "-1Mi"}})),
     "spec.containers[0].resources.requests[memory]: Invalid value: \"-1Mi\": must be greater than or equal to 0"),
    (lambda: pod(container(resources={"limits": {"gpu": "1"}})),
     "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified"),
    (lambda: pod(container(securityContext={"runAsUser": -1})),
     "spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive"),
    (lambda: pod(securityContext={"runAsUser": -5}),
     "spec.securityContext.runAsUser: Invalid value: -5: must be between 0 and 2147483647, inclusive"),
    (lambda: pod(initContainers=[container(name="init", livenessProbe={"tcpSocket": {"port": 1}})]),
     "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always"),
    (lambda: pod(container(restartPolicy="Always")),
     "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"),
    (lambda: pod(initContainers=[container()]), "spec.containers[0].name: Duplicate value: \"app\""),
    (lambda: pod(container(imagePullPolicy="Sometimes")), "spec.containers[0].imagePullPolicy: Unsupported value"),
    (lambda: pod(tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]),
     "spec.tolerations[0].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'"),
    (lambda: pod(activeDeadlineSeconds=0),
     "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"),
])
def test_pod_rules(make, expected):
    assert_problem(make(), expected)


# -- deployments and replicasets ---------------------------------------------------------------

@pytest.mark.parametrize("make,expected", [
    (lambda: deployment(image=""), "spec.template.spec.containers[0].image: Required value"),
    (lambda: deployment({"selector": None}), "spec.selector: Required value"),
    (lambda: deployment({"selector": {}}), "spec.selector: Invalid value: {}: empty selector is invalid for deployment"),
    (lambda: deployment({"selector": {"matchLabels": {"app": "api"}}}),
     "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`"),
    (lambda: deployment({"selector": {"matchLabels": {"app": "web"},
                                      "matchExpressions": [{"key": "tier", "operator": "Exists"}]}}),
     "`selector` does not match template `labels`"),
    (lambda: deployment({"replicas": -1}), "spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
    (lambda: deployment({"strategy": {"type": "BlueGreen"}}),
     "spec.strategy.type: Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\""),
    (lambda: deployment({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}}),
     "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"),
    (lambda: deployment({"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}}),
     "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"),
    (lambda: deployment({"strategy": {"rollingUpdate": {"maxSurge": "25"}}}),
     "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"25\": a valid percent string must be a numeric string followed by an ending '%'"),
    (lambda: deployment({"strategy": {"rollingUpdate": {"maxUnavailable": "150%"}}}),
     "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%"),
    (lambda: deployment({"minReadySeconds": 700}),
     "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"),
    (lambda: deployment({"revisionHistoryLimit": -2}), "spec.revisionHistoryLimit: Invalid value: -2"),
    (lambda: deployment({"selector": {"matchExpressions": [{"key": "app", "operator": "Near", "values": ["a"]}]}}),
     "spec.selector.matchExpressions[0].operator: Unsupported value: \"Near\""),
])
def test_deployment_rules(make, expected):
    assert_problem(make(), expected)


def test_template_restart_policy_must_be_always():
    d = deployment()
    d["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert_problem(d, "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"")
    d["kind"] = "ReplicaSet"
    assert_problem(d, "spec.template.spec.restartPolicy: Unsupported value: \"Never\"")


def test_template_labels_are_validated():
    d = deployment()
    d["spec"]["template"]["metadata"]["labels"]["bad"] = "no spaces"
    assert_problem(d, "spec.template.metadata.labels: Invalid value: \"no spaces\"")


# -- services, endpoints ----------------------------------------------------------------------

@pytest.mark.parametrize("make,expected", [
    (lambda: service(), "spec.ports: Required value"),
    (lambda: service({"port": 0}), "spec.ports[0].port: Required value"),
    (lambda: service({"port": 65536}), "spec.ports[0].port: Invalid value: 65536: must be between 1 and 65535, inclusive"),
    (lambda: service({"port": 80}, {"port": 81}), "spec.ports[0].name: Required value"),
    (lambda: service({"name": "http", "port": 80}, {"name": "http", "port": 81}),
     "spec.ports[1].name: Duplicate value: \"http\""),
    (lambda: service({"name": "a", "port": 80}, {"name": "b", "port": 80}),
     "spec.ports[1]: Duplicate value: {\"port\": 80, \"protocol\": \"TCP\"}"),
    (lambda: service({"port": 80, "targetPort": "8080"}),
     "spec.ports[0].targetPort: Invalid value: \"8080\": must contain at least one letter (a-z)"),
    (lambda: service({"port": 80, "targetPort": 70000}),
     "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive"),
    (lambda: service({"port": 80, "protocol": "ICMP"}), "spec.ports[0].protocol: Unsupported value: \"ICMP\""),
    (lambda: service({"port": 80}, type="Balanced"),
     "spec.type: Unsupported value: \"Balanced\": supported values: \"ClusterIP\", \"NodePort\", \"LoadBalancer\", \"ExternalName\""),
    (lambda: service({"port": 80, "nodePort": 30001}),
     "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"),
    (lambda: service({"port": 80}, clusterIP="10.43.0.300"), "spec.clusterIP: Invalid value: \"10.43.0.300\""),
    (lambda: service(type="ExternalName"), "spec.externalName: Required value"),
    (lambda: service({"port": 80}, type="NodePort", clusterIP="None"),
     "spec.clusterIP: Invalid value: \"None\": may not be set to 'None' for NodePort services"),
    (lambda: service({"port": 80}, sessionAffinity="ClientIP",
                     sessionAffinityConfig={"clientIP": {"timeoutSeconds": 90000}}),
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 90000"),
    (lambda: service({"port": 80}, selector={"app": "a b"}), "spec.selector: Invalid value: \"a b\""),
])
def test_service_rules(make, expected):
    assert_problem(make(), expected)


def test_headless_service_needs_no_ports():
    assert problems(service(clusterIP="None")) == []


@pytest.mark.parametrize("ip,expected", [
    ("10.42.0.300", "must be a valid IP address"),
    ("127.0.0.1", "may not be in the loopback range"),
    ("169.254.1.1", "may not be in the link-local range"),
    ("", "Required value"),
])
def test_endpoint_addresses_are_ips(ip, expected):
    ep = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e"},
          "subsets": [{"addresses": [{"ip": ip}], "ports": [{"port": 80}]}]}
    assert_problem(ep, f"subsets[0].addresses[0].ip: {'Invalid value' if ip else 'Required value'}")
    assert_problem(ep, expected)


def test_endpoint_ports():
    ep = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e"},
          "subsets": [{"ports": [{"port": 80}, {"port": 0, "name": "b"}]}]}
    found = problems(ep)
    assert "subsets[0].ports[0].name: Required value" in found
    assert "subsets[0].ports[1].port: Required value" in found


# -- configmaps, secrets, pvc, events ---------------------------------------------------------

def test_config_keys():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
          "data": {"ok.key_1-A": "v", "bad/key": "v", "..": "v", "dup": "v"},
          "binaryData": {"dup": "AA=="}}
    found = problems(cm)
    assert any(f.startswith("data[bad/key]: Invalid value: \"bad/key\": a valid config key") for f in found)
    assert "data[..]: Invalid value: \"..\": must not be '..'" in found
    assert any(f.startswith("binaryData[dup]: Invalid value: \"dup\"") for f in found)
    assert len(found) == 3


def test_configmap_size_limit():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
          "data": {"big": "x" * (1024 * 1024 + 1)}}
    assert "data: Too long: must have at most 1048576 bytes" in problems(cm)


@pytest.mark.parametrize("kind,data,expected", [
    ("kubernetes.io/tls", {"tls.crt": "Y2VydA=="}, "data[tls.key]: Required value"),
    ("kubernetes.io/dockerconfigjson", {}, "data[.dockerconfigjson]: Required value"),
    ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": base64.b64encode(b"{no").decode()},
     "data[.dockerconfigjson]: Invalid value: must be valid JSON"),
    ("kubernetes.io/basic-auth", {}, "data[username]: Required value"),
    ("kubernetes.io/ssh-auth", {}, "data[ssh-privatekey]: Required value"),
    ("kubernetes.io/service-account-token", {},
     "metadata.annotations[kubernetes.io/service-account.name]: Required value"),
])
def test_typed_secrets_need_their_keys(kind, data, expected):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": kind, "data": data}
    assert expected in problems(secret)


def test_secret_keys_from_string_data_are_checked():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "stringData": {"bad key": "v"}}
    assert_problem(secret, "stringData[bad key]: Invalid value: \"bad key\"", default=False)
    assert_problem(secret, "data[bad key]: Invalid value: \"bad key\"")


@pytest.mark.parametrize("spec,expected", [
    ({"resources": {"requests": {"storage": "1Gi"}}}, "spec.accessModes: Required value: at least 1 access mode is required"),
    ({"accessModes": ["ReadWriteSometimes"], "resources": {"requests": {"storage": "1Gi"}}},
     "spec.accessModes[0]: Unsupported value: \"ReadWriteSometimes\""),
    ({"accessModes": ["ReadWriteOnce"]}, "spec.resources.requests[storage]: Required value"),
    ({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "0"}}},
     "spec.resources.requests[storage]: Invalid value: \"0\": must be greater than zero"),
    ({"accessModes": ["ReadWriteOnce"], "volumeMode": "Raw", "resources": {"requests": {"storage": "1"}}},
     "spec.volumeMode: Unsupported value: \"Raw\""),
])
def test_pvc_rules(spec, expected):
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "d"}, "spec": spec}
    assert_problem(pvc, expected)


def test_event_rules():
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "shop"}}
    assert_problem(ev, "involvedObject: Required value")
    ev["involvedObject"] = {"kind": "Pod", "namespace": "other"}
    ev["type"] = "Info"
    found = problems(ev)
    assert "involvedObject.name: Required value" in found
    assert "involvedObject.namespace: Invalid value: \"other\": does not match event.namespace" in found
    assert any(f.startswith("type: Unsupported value: \"Info\"") for f in found)


# -- updates: immutable fields ----------------------------------------------------------------

def test_name_and_namespace_are_immutable():
    old = pod()
    new = copy.deepcopy(old)
    new["metadata"].update(name="web2", namespace="other")
    found = problems(new, old)
    assert "metadata.name: Invalid value: \"web2\": field is immutable" in found
    assert "metadata.namespace: Invalid value: \"other\": field is immutable" in found


def test_deployment_selector_is_immutable_but_the_rest_is_not():
    old = deployment()
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 5
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    assert problems(new, old) == []
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "2"}}
    new["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    assert_problem(new, 'spec.selector: Invalid value: {"matchLabels":{"app":"web","v":"2"}}: field is immutable', old)


def test_replicaset_selector_is_immutable():
    old = deployment()
    old["kind"] = "ReplicaSet"
    new = copy.deepcopy(old)
    new["spec"]["selector"]["matchLabels"]["app"] = "web2"
    new["spec"]["template"]["metadata"]["labels"]["app"] = "web2"
    assert_problem(new, "spec.selector: Invalid value", old)


def test_service_cluster_ip_is_immutable_once_set():
    old = service({"port": 80}, clusterIP="10.43.0.10")
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.43.0.11"
    assert "spec.clusterIP: Invalid value: \"10.43.0.11\": field is immutable" in problems(new, old)
    new["spec"]["clusterIP"] = "10.43.0.10"
    new["spec"]["ports"][0]["port"] = 8080
    assert problems(new, old) == []
    del new["spec"]["clusterIP"]  # the server carries it over (defaults.preserve_allocated)
    assert problems(new, old) == []


def test_pvc_spec_is_immutable_except_growing_storage_and_binding():
    old = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "d"},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    grown = copy.deepcopy(old)
    grown["spec"]["resources"]["requests"]["storage"] = "2Gi"
    grown["spec"]["volumeName"] = "pv-1"
    assert problems(grown, old) == []
    shrunk = copy.deepcopy(old)
    shrunk["spec"]["resources"]["requests"]["storage"] = "512Mi"
    assert "spec.resources.requests[storage]: Forbidden: field can not be less than previous value" in problems(shrunk, old)
    modes = copy.deepcopy(old)
    modes["spec"]["accessModes"] = ["ReadWriteMany"]
    assert_problem(modes, "spec: Forbidden: spec is immutable after creation", old)
    assert_problem(modes, "changed: spec.accessModes[0]", old)
    rebound = copy.deepcopy(grown)
    rebound["spec"]["volumeName"] = "pv-2"
    assert_problem(rebound, "changed: spec.volumeName", grown)


def test_pod_updates_may_change_images_and_little_else():
    old = pod(container(ports=[{"containerPort": 80}]), tolerations=[{"key": "a", "operator": "Exists"}],
              activeDeadlineSeconds=600)
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.26"
    new["spec"]["tolerations"].append({"key": "b", "operator": "Exists"})
    new["spec"]["activeDeadlineSeconds"] = 300
    new["spec"]["nodeName"] = "shoal"
    assert problems(new, old) == []
    ports = copy.deepcopy(old)
    ports["spec"]["containers"][0]["ports"][0]["containerPort"] = 81
    assert_problem(ports, "spec: Forbidden: pod updates may not change fields other than", old)
    assert_problem(ports, "changed: spec.containers[0].ports[0].containerPort", old)
    longer = copy.deepcopy(old)
    longer["spec"]["activeDeadlineSeconds"] = 900
    assert "spec.activeDeadlineSeconds: Invalid value: 900: must be less than or equal to previous value" in problems(longer, old)
    fewer = copy.deepcopy(old)
    fewer["spec"]["tolerations"] = []
    assert_problem(fewer, "spec.tolerations: Forbidden: existing toleration can not be modified or removed", old)


def test_pod_status_update_validates_against_the_same_spec():
    old = defaults.apply_defaults(pod())
    new = copy.deepcopy(old)
    new["status"] = {"phase": "Running", "podIP": "10.42.0.3", "startTime": "2024-05-01T10:00:00Z"}
    validation.validate(new, old)


def test_immutable_configmaps_and_secrets():
    old = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"},
           "immutable": True}
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    assert "data: Forbidden: field is immutable when `immutable` is set" in problems(new, old)
    new = copy.deepcopy(old)
    new["immutable"] = False
    assert "immutable: Forbidden: field is immutable when `immutable` is set" in problems(new, old)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {}}
    changed = {**secret, "type": "kubernetes.io/basic-auth", "data": {"username": "YQ=="}}
    assert "type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable" in problems(changed, secret)


# -- robustness and speed ---------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["x", [], {"containers": "x"}, {"containers": ["x", {"ports": "y"}]},
                                  {"template": {"spec": {"volumes": [3]}}, "selector": "x"},
                                  {"ports": [None, "x"], "selector": []}])
@pytest.mark.parametrize("kind,api", [("Pod", "v1"), ("Deployment", "apps/v1"), ("Service", "v1"),
                                      ("PersistentVolumeClaim", "v1")])
def test_wrong_shapes_are_reported_not_crashed_on(spec, kind, api):
    obj = {"apiVersion": api, "kind": kind, "metadata": {"name": "x"}, "spec": spec}
    assert problems(obj)


def test_validating_a_typical_pod_is_fast():
    p = defaults.apply_defaults(yaml.safe_load_all(DOCS).__next__() and pod(
        container(ports=[{"containerPort": 80, "name": "http"}],
                  env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                  resources={"requests": {"cpu": "100m", "memory": "64Mi"},
                             "limits": {"cpu": "1", "memory": "128Mi"}},
                  readinessProbe={"httpGet": {"port": "http"}},
                  volumeMounts=[{"name": "data", "mountPath": "/data"}]),
        container(name="sidecar", image="busybox", command=["sleep", "1d"]),
        volumes=[{"name": "data", "emptyDir": {}}]))
    validation.validate(p)  # warm-up: compiles the Pod schema
    runs = 300
    start = time.perf_counter()
    for _ in range(runs):
        validation.validate(p)
    per_pod = (time.perf_counter() - start) / runs
    print(f"validate(pod): {per_pod * 1e6:.0f} us")
    assert per_pod < 0.002  # measured ~0.15 ms; generous bound for a shared 2-core machine
