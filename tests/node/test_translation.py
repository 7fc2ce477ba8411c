"""Intent translation, container ids, the access resolver's choices, pull decisions."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from shoal.node import access, intent, messages, paths, pulling
from shoal.node.errors import ContainerNotFound

SANDBOX = SimpleNamespace(netns_path="/var/run/netns/x", ipc_ns_path="/ipc", uts_ns_path="/uts",
                          hostname="web", ip="10.241.0.2")
POD = {"metadata": {"name": "web", "namespace": "default", "uid": "1234-ab"},
       "spec": {"securityContext": {"runAsUser": 1000},
                "containers": [{"name": "app", "image": "busybox"}, {"name": "side", "image": "busybox"}]}}


def test_intent_fields_limits_mounts_labels(tmp_path):
    c = {"name": "app", "command": ["sh"], "args": ["-c", "true"],
         "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}, "requests": {"cpu": "250m"}},
         "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
         "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}
    mounts = intent.container_mounts(c, {"data": tmp_path}, {"/etc/hosts": tmp_path / "hosts"})
    fields = intent.intent_fields(POD, c, container_id="cid", rootfs=Path("/r"), env={"A": "1"}, mounts=mounts,
                                  sandbox=SANDBOX, log_path=Path("/l"), restart_count=3)
    assert fields["resources"] == intent.ResourceSpec(64 * 2**20, 500, 250)
    assert fields["mounts"] == [intent.MountSpec("/data", str(tmp_path), True)]
    assert fields["etc_hosts"] == tmp_path / "hosts"
    assert fields["network"] == "/var/run/netns/x"
    assert fields["security"]["run_as_user"] == 1000 and fields["security"]["cap_add"] == ["NET_ADMIN"]
    assert fields["labels"][intent.LABEL_RESTART] == "3"


def test_container_ids_round_trip():
    uid = "2fa903e3-8c8a-4eeb-87c8-aa2c49931c58"
    cid = paths.container_id(uid, "my-app", 7)
    assert cid == "2fa903e38c8a4eeb87c8aa2c_my-app_7"
    assert paths.parse_container_id(cid) == ("2fa903e38c8a4eeb87c8aa2c", "my-app", 7)
    long = paths.container_id(uid, "a" * 63, 12345)
    assert len(long) <= 64 and paths.parse_container_id(long).container == paths.name_part("a" * 63)
    assert paths.parse_container_id("something-else") is None


def test_pick_container():
    assert access.pick_container(POD, None) == "app"
    assert access.pick_container(POD, "side") == "side"
    with pytest.raises(ContainerNotFound, match="choose one of: \\[app side\\]"):
        access.pick_container(POD, "nope")


def test_registry_host_detection():
    assert pulling.names_registry("127.0.0.1:5000/app:v1")
    assert pulling.names_registry("registry.example.com/x")
    assert not pulling.names_registry("busybox")
    assert not pulling.names_registry("library/busybox:1.36")


def test_runtime_error_is_cleaned():
    raw = ('runc create failed: unable to start container process: exec: "nope": '
           'executable file not found in $PATH: unknown')
    assert messages.clean_runtime_error(raw) == 'exec: "nope": executable file not found in $PATH'
    escaped = 'runc create: msg="exec: \\"/bin/x\\": stat /bin/x: no such file or directory"'
    assert messages.clean_runtime_error(escaped) == 'exec: "/bin/x": stat /bin/x: no such file or directory'


def test_pull_credentials_from_docker_config_secrets():
    import base64
    import json

    def secret(key, doc):
        return {"type": "kubernetes.io/dockerconfigjson",
                "data": {key: base64.b64encode(json.dumps(doc).encode()).decode()}}

    auth = base64.b64encode(b"alice:pa:ss").decode()
    secrets = [secret(".dockerconfigjson", {"auths": {"other.example": {"auth": auth}}}),
               secret(".dockerconfigjson", {"auths": {"https://127.0.0.1:5000/v2/": {"auth": auth}}}),
               secret(".dockercfg", {"reg.example": {"username": "bob", "password": "x"}})]
    assert pulling.pull_credentials(secrets, "127.0.0.1:5000") == ("alice", "pa:ss")
    assert pulling.pull_credentials(secrets, "reg.example") == ("bob", "x")
    assert pulling.pull_credentials(secrets, "nowhere") is None
