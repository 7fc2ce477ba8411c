"""Overlay snapshots on real mounts: busybox rootfs, isolation, idempotence, many layers."""

import os
import subprocess

import pytest

from shoal.images import SnapshotError, mounts

from .conftest import image_from_layers, layer_tar, tar_entry


def test_busybox_snapshot_is_a_working_writable_rootfs(store, busybox):
    root = store.snapshots.prepare("ctr-1", busybox)
    assert mounts.is_mounted(root)
    assert (root / "bin/busybox").is_file()
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    for name in ("passwd", "group", "nsswitch.conf", "hosts"):
        assert (root / "etc" / name).is_file()
    out = subprocess.run(["chroot", str(root), "/bin/sh", "-c", "echo hi > /tmp/x; cat /tmp/x; id -un"],
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["hi", "root"]
    # The write landed in this snapshot's upper dir, not in the shared layer.
    layer = store.layer_store.path(busybox.diff_ids[0])
    assert (store.snapshots.diff("ctr-1") / "tmp/x").read_text() == "hi\n"
    assert not (layer / "tmp/x").exists()
    (root / "bin/busybox").write_bytes(b"clobbered")
    assert (layer / "bin/busybox").stat().st_size > 100_000
    # A second container from the same image sees the pristine image.
    other = store.snapshots.prepare("ctr-2", busybox)
    assert not (other / "tmp/x").exists()
    assert (other / "bin/busybox").stat().st_size > 100_000
    # Idempotent prepare, list, remove.
    assert store.snapshots.prepare("ctr-1", busybox) == root
    assert store.snapshots.list() == ["ctr-1", "ctr-2"]
    store.snapshots.remove("ctr-1")
    store.snapshots.remove("ctr-1")
    assert not mounts.is_mounted(root) and not root.exists()
    assert store.snapshots.list() == ["ctr-2"]
    store.snapshots.cleanup_all()
    assert mounts.mounts_under(store.root) == []


def test_prepare_rejects_bad_keys_and_a_different_image_under_a_live_key(store, busybox):
    with pytest.raises(SnapshotError, match="snapshot key"):
        store.snapshots.prepare("../x", busybox)
    other = image_from_layers(store, [layer_tar([tar_entry("a", data=b"a")])])
    store.snapshots.prepare("k", busybox)
    with pytest.raises(SnapshotError, match="already mounted"):
        store.snapshots.prepare("k", other)


def test_many_layers_stack_in_order_with_short_mount_options(store):
    layers = []
    for n in range(12):
        entries = [tar_entry(f"layer{n}", data=str(n).encode()), tar_entry("top", data=str(n).encode())]
        layers.append(layer_tar(entries))
    img = image_from_layers(store, layers)
    root = store.snapshots.prepare("tall", img)
    assert (root / "top").read_text() == "11"  # the last layer wins
    assert sorted(os.listdir(root)) == sorted([f"layer{n}" for n in range(12)] + ["top"])
    # The option string given to mount(2) uses the short lower/<n> links.
    long_form = ":".join(str(store.layer_store.path(d)) for d in img.diff_ids)
    assert len(long_form) > 900
    line = next(l for l in open("/proc/self/mountinfo") if f" {root} " in l)
    assert "lowerdir=lower/11:lower/10:lower/9:" in line and ",upperdir=upper," in line


def test_snapshot_diff_commits_as_a_new_layer(store, busybox, tmp_path):
    """What a container changed (write, delete file, delete dir, replace dir) becomes a
    layer; a container from the committed image sees exactly those changes."""
    from shoal.images.layerfile import store_layer_tar, write_diff_tar

    root = store.snapshots.prepare("build", busybox)
    subprocess.run(["chroot", str(root), "/bin/sh", "-c",
                    "echo new > /etc/motd && rm /etc/hosts && rm -r /home && "
                    "rm -r /var && mkdir -p /var/lib && echo v > /var/lib/only && ln /etc/motd /etc/motd2"],
                   check=True)
    diff_tar = tmp_path / "diff.tar"
    write_diff_tar(store.snapshots.diff("build"), diff_tar, epoch=0)
    layer = store_layer_tar(store, diff_tar)
    base = [(d["digest"], diff, d["size"], d["mediaType"])
            for d, diff in zip(busybox.layer_descriptors, busybox.diff_ids)]
    committed = store.commit_image(busybox.raw_config, base + [layer], "localhost/committed:1")
    assert committed.diff_ids == busybox.diff_ids + [layer[1]]
    root2 = store.snapshots.prepare("run", committed)
    assert (root2 / "etc/motd").read_text() == "new\n"
    assert os.stat(root2 / "etc/motd").st_ino == os.stat(root2 / "etc/motd2").st_ino
    assert not (root2 / "etc/hosts").exists() and not (root2 / "home").exists()
    assert os.listdir(root2 / "var") == ["lib"]  # opaque: the old var/tmp is gone
    assert (root2 / "bin/busybox").is_file()


def test_concurrent_prepares_share_one_unpack(store, busybox):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        roots = list(pool.map(lambda n: store.snapshots.prepare(f"c{n}", busybox), range(4)))
    assert all((r / "bin/busybox").is_file() for r in roots)
    assert store.layer_store.diff_ids() == busybox.diff_ids
    assert [e for e in os.listdir(store.paths.layers) if e.startswith(".tmp-")] == []


def test_unmount_all_keeps_container_files_for_a_remount(store, busybox):
    root = store.snapshots.prepare("keep", busybox)
    (root / "data").write_text("survives a restart")
    store.snapshots.cleanup_all(delete=False)
    assert not mounts.is_mounted(root)
    assert store.snapshots.prepare("keep", busybox) == root
    assert (root / "data").read_text() == "survives a restart"
    other = image_from_layers(store, [layer_tar([tar_entry("a", data=b"a")])])
    store.snapshots.cleanup_all(delete=False)
    with pytest.raises(SnapshotError, match="exists for image"):
        store.snapshots.prepare("keep", other)
