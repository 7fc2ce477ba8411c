"""The kubelet's atomic writer: `..data` swap, items, modes, in-place update."""

import os

import pytest

from shoal.node import volumes
from shoal.node.errors import VolumeError


def test_atomic_writer_swaps_data_and_removes_old(tmp_path):
    target = tmp_path / "vol"
    assert volumes.write_atomic(target, {"a.conf": (b"one", 0o644), "sub/b": (b"two", 0o600)})
    assert (target / "a.conf").read_text() == "one"
    assert (target / "sub" / "b").read_text() == "two"
    assert os.readlink(target / "..data").startswith("..")
    first = os.readlink(target / "..data")
    assert not volumes.write_atomic(target, {"a.conf": (b"one", 0o644), "sub/b": (b"two", 0o600)})
    assert volumes.write_atomic(target, {"a.conf": (b"three", 0o644)})
    assert (target / "a.conf").read_text() == "three"
    assert not (target / "sub").exists()
    assert not (target / first).exists()
    assert ((target / "a.conf").stat().st_mode & 0o777) == 0o644


def test_projection_items_and_missing_key():
    cm = {"kind": "ConfigMap", "data": {"k": "v", "other": "x"}}
    files = volumes.projected_files({"items": [{"key": "k", "path": "dir/file", "mode": 0o400}],
                                     "defaultMode": 0o644}, cm, "ConfigMap", "cfg")
    assert files == {"dir/file": (b"v", 0o400)}
    with pytest.raises(VolumeError, match="non-existent config key: nope"):
        volumes.projected_files({"items": [{"key": "nope", "path": "p"}]}, cm, "ConfigMap", "cfg")
    with pytest.raises(VolumeError, match='configmap "cfg" not found'):
        volumes.projected_files({}, None, "ConfigMap", "cfg")
    assert volumes.projected_files({"optional": True}, None, "ConfigMap", "cfg") == {}


POD = {"metadata": {"name": "web", "namespace": "shop", "uid": "u1", "labels": {"app": "web", "tier": "front"}},
       "spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "64Mi"}}}]}}


def test_downward_api_files():
    files = volumes.downward_files({"items": [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
    ]}, POD, 0o644)
    assert files == {"name": (b"web", 0o644), "labels": (b'app="web"\ntier="front"', 0o644), "mem": (b"64", 0o644)}


def test_projected_merges_sources_and_skips_tokens():
    cm = {"kind": "ConfigMap", "data": {"ca.crt": "CERT"}}
    secret = {"kind": "Secret", "type": "Opaque", "data": {"k": "dg=="}}
    files = volumes.projected({"defaultMode": 0o440, "sources": [
        {"serviceAccountToken": {"path": "token"}},
        {"configMap": {"name": "root-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"secret": {"name": "s"}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
    ]}, POD, configmaps={"root-ca": cm}, secrets={"s": secret})
    assert files == {"ca.crt": (b"CERT", 0o440), "k": (b"v", 0o440), "namespace": (b"shop", 0o440)}


def test_fs_group_owns_projected_files(tmp_path):
    target = tmp_path / "secret"
    volumes.write_atomic(target, {"token": (b"t", 0o400)}, gid=2000)
    st = (target / "token").stat()
    assert st.st_gid == 2000 and (st.st_mode & 0o777) == 0o440
