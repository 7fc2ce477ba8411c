"""Base images: busybox (reproducible, runnable) and the apt-sources mirror lookup.
The Debian (mmdebstrap) image is in test_bootstrap_debian.py."""

from shoal.images import BootstrapError, ImageStore
from shoal.images.aptsources import AptSource, mirror_lines, parse_sources

import pytest

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no
"""

ONE_LINE = """\
# comment
deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian trixie main non-free
deb-src http://one.example/debian trixie main
"""


def test_mirror_comes_from_apt_configuration():
    sources = parse_sources("debian.sources", DEB822) + parse_sources("x.list", ONE_LINE)
    assert sources == [
        AptSource("http://mirror.example/debian", ("bookworm", "bookworm-updates"), ("main", "contrib")),
        AptSource("http://one.example/debian", ("trixie",), ("main", "non-free")),
    ]
    assert mirror_lines(sources, "bookworm") == ["deb http://mirror.example/debian bookworm main contrib"]
    assert mirror_lines(sources, "trixie") == ["deb http://one.example/debian trixie main non-free"]
    with pytest.raises(BootstrapError, match="suite 'sid': no apt source serves it"):
        mirror_lines(sources, "sid")


def test_busybox_bootstrap_is_reproducible(tmp_path, store, busybox):
    other = ImageStore(tmp_path / "other")
    again = other.bootstrap_busybox("busybox")
    assert again.digest == busybox.digest and again.layers == busybox.layers
    assert busybox.references == ("docker.io/library/busybox:latest",)
    assert busybox.config["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=") for e in busybox.config["Env"])
    assert store.bootstrap_busybox("busybox", epoch=1_700_000_000).layers != busybox.layers
