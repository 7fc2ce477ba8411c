"""Safe unpack: whiteouts/opaque dirs through real overlay mounts, and hostile layers."""

import gzip
import os
import stat
import tarfile

import pytest

from shoal.images import UnsafeLayer

from .conftest import image_from_layers, layer_tar, tar_entry

DIR, REG, SYM, LNK, CHR, BLK = (tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE,
                                tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE)


def test_whiteouts_and_opaque_dirs_across_two_layers(store):
    lower = layer_tar([
        tar_entry("etc", DIR, mode=0o755),
        tar_entry("etc/keep", data=b"keep"),
        tar_entry("etc/gone", data=b"gone"),
        tar_entry("opaque", DIR, mode=0o755),
        tar_entry("opaque/old1", data=b"1"),
        tar_entry("opaque/sub", DIR),
        tar_entry("opaque/sub/old2", data=b"2"),
        tar_entry("dirgone", DIR),
        tar_entry("dirgone/x", data=b"x"),
    ])
    upper = layer_tar([
        tar_entry("etc/.wh.gone"),
        tar_entry(".wh.dirgone"),
        tar_entry("opaque", DIR, mode=0o755),
        tar_entry("opaque/.wh..wh..opq"),
        tar_entry("opaque/new", data=b"new"),
    ])
    img = image_from_layers(store, [lower, gzip.compress(upper, mtime=0)])
    top = store.layer_store.ensure(img.layers[1], img.diff_ids[1])
    st = os.lstat(top / "etc/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0  # overlay whiteout
    assert os.getxattr(top / "opaque", "trusted.overlay.opaque") == b"y"
    root = store.snapshots.prepare("wh", img)
    assert (root / "etc/keep").read_text() == "keep"
    assert not (root / "etc/gone").exists()
    assert not (root / "dirgone").exists()
    assert sorted(os.listdir(root / "opaque")) == ["new"]


def test_hard_links_permissions_ownership_and_devices(store):
    raw = layer_tar([
        tar_entry("bin", DIR, mode=0o755),
        tar_entry("bin/tool", data=b"#!x", mode=0o4755, uid=0, gid=0),
        tar_entry("bin/tool-link", LNK, linkname="bin/tool"),
        tar_entry("home", DIR),
        tar_entry("home/app", DIR, mode=0o700, uid=1000, gid=1001),
        tar_entry("home/app/data", data=b"d", mode=0o600, uid=1000, gid=1001),
        tar_entry("tmp", DIR, mode=0o1777),
        tar_entry("dev", DIR),
        tar_entry("dev/sda", BLK, devmajor=8, devminor=0),
        tar_entry("dev/mem", CHR, devmajor=1, devminor=1),
        tar_entry("link-abs", SYM, linkname="/bin/tool"),
    ])
    img = image_from_layers(store, [raw])
    path = store.layer_store.ensure(img.layers[0], img.diff_ids[0])
    assert os.stat(path / "bin/tool").st_ino == os.stat(path / "bin/tool-link").st_ino
    assert stat.S_IMODE(os.stat(path / "bin/tool").st_mode) == 0o4755
    st = os.stat(path / "home/app/data")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1001, 0o600)
    assert stat.S_IMODE(os.stat(path / "tmp").st_mode) == 0o1777
    assert os.listdir(path / "dev") == []  # device nodes skipped
    assert os.readlink(path / "link-abs") == "/bin/tool"  # absolute: resolved in the container


@pytest.fixture
def outside(tmp_path):
    """A directory hostile layers aim at; it must stay empty."""
    d = tmp_path / "outside"
    d.mkdir()
    (tmp_path / "victim").write_text("original")
    return d


HOSTILE = {
    "dotdot": ([tar_entry("../../outside/pwned", data=b"x")], "'..'"),
    "nested-dotdot": ([tar_entry("a/../../outside/pwned", data=b"x")], "'..'"),
    "absolute": ([tar_entry("/etc/pwned", data=b"x")], "absolute path"),
    "symlink-then-write": ([tar_entry("esc", SYM, linkname="{outside}"),
                            tar_entry("esc/pwned", data=b"x")], "is a symlink"),
    "relative-symlink-escape": ([tar_entry("esc", SYM, linkname="../../../../outside")],
                                "points outside the layer"),
    "symlink-dir-then-dir": ([tar_entry("esc", SYM, linkname="{outside}"),
                              tar_entry("esc/sub", DIR)], "is a symlink"),
    "hardlink-dotdot": ([tar_entry("hl", LNK, linkname="../../victim")], "'..'"),
    "hardlink-absolute": ([tar_entry("hl", LNK, linkname="{victim}")], "absolute path"),
    "hardlink-through-symlink": ([tar_entry("esc", SYM, linkname="{tmp}"),
                                  tar_entry("hl", LNK, linkname="esc/victim")], "is a symlink"),
    "hardlink-missing": ([tar_entry("hl", LNK, linkname="etc/shadow")], "not in this layer"),
    "whiteout-through-symlink": ([tar_entry("esc", SYM, linkname="{outside}"),
                                  tar_entry("esc/.wh.pwned")], "is a symlink"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_is_rejected_and_writes_nothing_outside(store, tmp_path, outside, case):
    entries, why = HOSTILE[case]
    fixed = []
    for info, data in entries:
        info.linkname = info.linkname.format(outside=outside, victim=tmp_path / "victim", tmp=tmp_path)
        fixed.append((info, data))
    img = image_from_layers(store, [layer_tar(fixed)])
    with pytest.raises(UnsafeLayer, match=why):
        store.snapshots.prepare("evil", img)
    assert os.listdir(outside) == []
    assert (tmp_path / "victim").read_text() == "original"
    assert os.stat(tmp_path / "victim").st_nlink == 1
    assert not os.path.exists("/etc/pwned")
    assert os.listdir(store.paths.layers) == []  # no half layer, no temp dir
    assert store.snapshots.list() == []


def test_huge_size_claim_is_rejected(store):
    raw = layer_tar([tar_entry("big", data=b"A" * 1024)])
    # Rewrite the header: claim 10 GiB, keep 1 KiB of data, then end the archive.
    info = tarfile.TarInfo("big")
    info.size = 10 << 30
    info.mtime = 0
    header = info.tobuf(tarfile.PAX_FORMAT)
    evil = header + b"A" * 1024 + b"\0" * 1024
    img = image_from_layers(store, [evil])
    with pytest.raises(UnsafeLayer, match="claims 10737418240 bytes"):
        store.layer_store.ensure(img.layers[0], img.diff_ids[0])
    assert os.listdir(store.paths.layers) == []
    assert len(raw) > 0


def test_truncated_gzip_layer_is_rejected(store):
    raw = gzip.compress(layer_tar([tar_entry("f", data=os.urandom(200_000))]))
    img = image_from_layers(store, [raw[: len(raw) // 2]], check_diff_ids=False)
    with pytest.raises(UnsafeLayer, match="archive ends early"):
        store.layer_store.ensure(img.layers[0], img.diff_ids[0])
    assert os.listdir(store.paths.layers) == []
