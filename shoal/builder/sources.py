"""Where COPY/ADD read from: the build context, another stage's or image's root, or a URL
(ADD --checksum). Runs in a thread (blocking file and network I/O).
"""

from __future__ import annotations

import glob
import hashlib
import os
import posixpath
import urllib.request
from pathlib import Path

from shoal.builder.context import BuildContext
from shoal.builder.dockerfile import Instruction
from shoal.builder.errors import BuildError, ContextError
from shoal.builder import fsops


def source_items(context: BuildContext, src: str, src_root: Path | None, ins: Instruction):
    """(host path, base name, walk of (host, path relative to the source, lstat))."""
    if src_root is None:
        for rel in context.sources(src, ins.line, ins.keyword):
            host = context.root / rel
            walk = [(context.root / r, os.path.relpath(r, rel), st) for r, st in context.walk(rel)]
            yield host, posixpath.basename(rel.rstrip("/")) or rel, walk
        return
    pattern = src if src.startswith("/") else "/" + src
    if set("*?[") & set(pattern):
        parent = fsops.resolve_in_root(src_root, posixpath.dirname(pattern))
        hosts = sorted(glob.glob(str(parent / posixpath.basename(pattern))))
    else:
        hosts = [str(fsops.resolve_in_root(src_root, pattern))]
        if not os.path.lexists(hosts[0]):
            hosts = []
    if not hosts:
        raise ContextError(f"source {src!r} not found in stage/image {ins.flag('from')!r}", ins.line, ins.keyword)
    for h in hosts:
        host = Path(h)
        walk = []
        if host.is_dir() and not host.is_symlink():
            for dirpath, dirnames, filenames in os.walk(host):
                dirnames.sort()
                for name in sorted(dirnames + filenames):
                    p = Path(dirpath) / name
                    walk.append((p, os.path.relpath(p, host), os.lstat(p)))
        yield host, host.name, walk


def fetch_url(url: str, checksum: str, ins: Instruction, into: Path) -> Path:
    """Download `url` into the directory `into`, checking its sha256 `checksum`."""
    name = posixpath.basename(url.split("?", 1)[0]) or "download"
    out = into / name
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(out, "wb") as f:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                f.write(chunk)
    except OSError as exc:
        raise BuildError(f"fetching {url}: {exc}", ins.line, ins.keyword) from None
    if "sha256:" + h.hexdigest() != checksum:
        raise BuildError(f"{url}: checksum mismatch: expected {checksum}, got sha256:{h.hexdigest()}",
                         ins.line, ins.keyword)
    return out
