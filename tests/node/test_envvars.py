"""Container environment: literals, ConfigMap/Secret keys, envFrom, downward API."""

import base64

import pytest

from shoal.node import envvars
from shoal.node.errors import ContainerConfigError

POD = {
    "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
    "spec": {"nodeName": "shoal", "serviceAccountName": "default", "containers": []},
}
CM = {"kind": "ConfigMap", "data": {"mode": "fast", "bad key": "x"}}
SECRET = {"kind": "Secret", "type": "Opaque", "data": {"password": base64.b64encode(b"s3cret").decode()}}


def env_of(container, configmaps=None, secrets=None):
    return envvars.container_env(POD, container, configmaps=configmaps or {"cfg": CM},
                                 secrets=secrets or {"db": SECRET}, pod_ip="10.241.0.5")


def test_sources_resolve_in_kubernetes_order():
    env = env_of({
        "name": "app",
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "db"}}],
        "env": [
            {"name": "GREETING", "value": "hi $(CFG_mode) $$HOME"},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        ],
        "resources": {"limits": {"memory": "64Mi"}},
    })
    assert env["CFG_mode"] == "fast" and "CFG_bad key" not in env
    assert env["password"] == "s3cret" and env["PW"] == "s3cret"
    assert env["GREETING"] == "hi fast $HOME"
    assert (env["POD"], env["NS"], env["IP"], env["APP"], env["MEM"]) == ("web-1", "shop", "10.241.0.5", "web", "64")


def test_missing_key_has_kubernetes_message():
    with pytest.raises(ContainerConfigError, match="couldn't find key nope in ConfigMap shop/cfg"):
        env_of({"name": "a", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]})
    with pytest.raises(ContainerConfigError, match='configmap "gone" not found'):
        env_of({"name": "a", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]},
               configmaps={"gone": None})


def test_optional_reference_is_skipped():
    env = env_of({"name": "a", "env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope", "optional": True}}}],
        "envFrom": [{"secretRef": {"name": "gone", "optional": True}}]}, secrets={"gone": None})
    assert "X" not in env


def test_referenced_objects_include_volumes():
    pod = {"spec": {"containers": [{"name": "a", "envFrom": [{"configMapRef": {"name": "c1"}}]}],
                    "volumes": [{"name": "v", "secret": {"secretName": "s1"}},
                                {"name": "w", "configMap": {"name": "c2"}}]}}
    assert envvars.referenced_objects(pod) == ({"c1", "c2"}, {"s1"})
