"""Sidecar injection decisions, the injected pod, UID 1337 rejection, the CLI."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from shoal.cli.main import cli
from shoal.mesh import inject

NS_ON = {"metadata": {"name": "default", "labels": {"istio-injection": "enabled"}}}
NS_SHOAL = {"metadata": {"name": "default", "labels": {"shoal.io/mesh": "enabled"}}}
NS_OFF = {"metadata": {"name": "default"}}


def pod(**meta):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web"}, **meta},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]}}


def test_namespace_labels_and_pod_overrides():
    assert inject.needs_injection(pod(), NS_ON)
    assert inject.needs_injection(pod(), NS_SHOAL)
    assert not inject.needs_injection(pod(), NS_OFF)
    assert not inject.needs_injection(pod(), None)
    assert not inject.needs_injection(pod(annotations={"sidecar.istio.io/inject": "false"}), NS_ON)
    assert inject.needs_injection(pod(annotations={"sidecar.istio.io/inject": "true"}), NS_OFF)
    assert not inject.needs_injection(pod(labels={"sidecar.istio.io/inject": "false"}), NS_ON)
    disabled = {"metadata": {"name": "x", "labels": {"istio-injection": "disabled",
                                                     "shoal.io/mesh": "enabled"}}}
    assert not inject.needs_injection(pod(), disabled)


def test_injected_pod_has_the_sidecar_and_status():
    original = pod()
    injected = inject.inject(original, NS_ON)
    assert original["spec"]["containers"] == [{"name": "app", "image": "busybox"}]  # untouched
    proxy = injected["spec"]["initContainers"][0]
    assert proxy["name"] == "istio-proxy"
    assert proxy["restartPolicy"] == "Always"  # a native sidecar: Jobs can complete
    assert proxy["image"] == inject.DEFAULT_IMAGE
    assert proxy["securityContext"]["runAsUser"] == 1337
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 15021}
    assert {"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"} in proxy["ports"]
    assert proxy["resources"]["limits"]["memory"]
    assert [c["name"] for c in injected["spec"]["containers"]] == ["app"]
    status = json.loads(injected["metadata"]["annotations"]["sidecar.istio.io/status"])
    assert status["initContainers"] == ["istio-proxy"]
    # never twice
    assert not inject.needs_injection(injected, NS_ON)


def test_app_running_as_proxy_uid_is_rejected_with_the_field():
    bad = pod()
    bad["spec"]["containers"][0]["securityContext"] = {"runAsUser": 1337}
    result, errors = inject.admit_pod(bad, NS_ON)
    assert result is bad
    assert [e.path for e in errors] == ["spec.containers[0].securityContext.runAsUser"]
    assert "1337" in str(errors[0]) and "bypass the mesh" in str(errors[0])
    inherited = pod()
    inherited["spec"]["securityContext"] = {"runAsUser": 1337}
    assert [e.path for e in inject.admit_pod(inherited, NS_ON)[1]] == ["spec.securityContext.runAsUser"]
    # not meshed: not our business
    assert inject.admit_pod(bad, NS_OFF) == (bad, [])


def test_cli_inject_prints_yaml(tmp_path):
    manifest = tmp_path / "app.yaml"
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"template": {"metadata": {"labels": {"app": "d"}},
                                        "spec": {"containers": [{"name": "app", "image": "x"}]}}}}
    manifest.write_text(yaml.safe_dump_all([pod(), deployment]))
    result = CliRunner().invoke(cli, ["mesh", "inject", "-f", str(manifest)])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.output))
    assert docs[0]["spec"]["initContainers"][0]["name"] == "istio-proxy"
    assert docs[1]["spec"]["template"]["spec"]["initContainers"][0]["name"] == "istio-proxy"
    assert "namespace" not in docs[1]["spec"]["template"]["metadata"]


def test_cli_inject_honours_a_namespace_in_the_file(tmp_path):
    manifest = tmp_path / "app.yaml"
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "plain"}}
    p = pod(namespace="plain")
    manifest.write_text(yaml.safe_dump_all([ns, p]))
    result = CliRunner().invoke(cli, ["mesh", "inject", "-f", str(manifest)])
    docs = list(yaml.safe_load_all(result.output))
    assert [c["name"] for c in docs[1]["spec"]["containers"]] == ["app"]


def test_cli_inject_rejects_uid_1337(tmp_path):
    bad = pod()
    bad["spec"]["containers"][0]["securityContext"] = {"runAsUser": 1337}
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump(bad))
    result = CliRunner().invoke(cli, ["mesh", "inject", "-f", str(manifest)])
    assert result.exit_code == 1
    assert "spec.containers[0].securityContext.runAsUser" in result.output


def sidecar_of(p):
    return inject.inject(p, NS_ON)["spec"]["initContainers"][0]


def test_sidecar_workers_and_resources_from_istio_annotations():
    default = sidecar_of(pod())
    assert default["args"][-2:] == ["--concurrency", "1"]
    assert default["resources"]["limits"] == {"cpu": "2000m", "memory": "1Gi"}
    # Istio's rule with a CPU limit: ceil(limit) workers
    limited = sidecar_of(pod(annotations={"sidecar.istio.io/proxyCPULimit": "2500m",
                                          "sidecar.istio.io/proxyMemory": "64Mi"}))
    assert limited["args"][-1] == "3"
    assert limited["resources"]["limits"]["cpu"] == "2500m"
    assert limited["resources"]["requests"]["memory"] == "64Mi"
    # proxy.istio.io/config wins, in YAML or JSON
    for config in ('{"concurrency": 4}', "concurrency: 4\n"):
        both = sidecar_of(pod(annotations={"sidecar.istio.io/proxyCPULimit": "1",
                                           "proxy.istio.io/config": config}))
        assert both["args"][-1] == "4"
    # what the node agent runs: the argument; 0 means one worker per CPU
    assert inject.concurrency_of(limited, cpus=8) == 3
    assert inject.concurrency_of({"args": ["proxy", "sidecar", "--concurrency", "0"]}, cpus=8) == 8
    assert inject.concurrency_of({"args": ["proxy", "sidecar"]}, cpus=8) == 1


def test_malformed_sidecar_annotations_are_rejected_with_the_path():
    cases = {
        "sidecar.istio.io/proxyCPU": ("lots", "metadata.annotations[sidecar.istio.io/proxyCPU]"),
        "sidecar.istio.io/proxyMemoryLimit": ("-1Gi",
                                              "metadata.annotations[sidecar.istio.io/proxyMemoryLimit]"),
        "proxy.istio.io/config": ("concurrency: -1",
                                  "metadata.annotations[proxy.istio.io/config].concurrency"),
    }
    for key, (value, path) in cases.items():
        result, errors = inject.admit_pod(pod(annotations={key: value}), NS_ON)
        assert [e.path for e in errors] == [path], (key, errors)
        assert "istio-proxy" not in str(result)
    _, errors = inject.admit_pod(pod(annotations={"proxy.istio.io/config": "[1, 2]"}), NS_ON)
    assert "ProxyConfig mapping" in str(errors[0])
    _, errors = inject.admit_pod(pod(annotations={"proxy.istio.io/config": "{a: [}"}), NS_ON)
    assert "not YAML or JSON" in str(errors[0])
    # a request above the limit
    _, errors = inject.admit_pod(pod(annotations={"sidecar.istio.io/proxyCPU": "3"}), NS_ON)
    assert "less than or equal to its cpu limit" in str(errors[0])
    # pods outside the mesh are not our business
    assert inject.admit_pod(pod(annotations={"sidecar.istio.io/proxyCPU": "lots"}), NS_OFF)[1] == []
