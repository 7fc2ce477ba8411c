"""File operations inside a snapshot's rootfs, confined to it (blocking; run in threads).

`resolve_in_root` resolves a container path as the container would see it (symlinks
followed relative to the rootfs, never out of it), so a hostile base image cannot make
COPY write outside its rootfs. `copy_in` copies context/stage files (symlinks as
symlinks, modes and mtimes kept, owner set). `extract_tar` unpacks a local archive for
ADD with Python's `data` filter (no absolute paths, no escapes, no devices).
Extracted files are owned by root (or --chown): the `data` filter drops tar ownership.
`prune_mount_stubs` removes from an upper dir the empty files and directories runc
created as mount points for that step (/etc/resolv.conf, /run/secrets/x, cache
targets), so they never enter a layer.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from pathlib import Path

MAX_LINKS = 40


def resolve_in_root(root: Path, path: str) -> Path:
    root = Path(root)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            links += 1
            if links > MAX_LINKS:
                raise OSError(f"too many levels of symbolic links in {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def make_dirs(root: Path, path: str, uid: int, gid: int, chown_new: bool) -> Path:
    """mkdir -p inside the rootfs; new directories get uid:gid when `chown_new`."""
    current = "/"
    for part in [p for p in path.split("/") if p]:
        current = current.rstrip("/") + "/" + part
        host = resolve_in_root(root, current)
        if not os.path.lexists(host):
            os.mkdir(host, 0o755)
            if chown_new:
                os.lchown(host, uid, gid)
        elif not host.is_dir():
            raise NotADirectoryError(f"{current} exists in the image and is not a directory")
    return resolve_in_root(root, path)


def _copy_entry(src: Path, dst: Path, st: os.stat_result, uid: int, gid: int, mode: int | None) -> None:
    if os.path.lexists(dst) and not (stat.S_ISDIR(st.st_mode) and dst.is_dir() and not dst.is_symlink()):
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        else:
            dst.unlink()
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISDIR(st.st_mode):
        if not dst.exists():
            os.mkdir(dst)
        os.chmod(dst, mode if mode is not None else stat.S_IMODE(st.st_mode))
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
        os.chmod(dst, mode if mode is not None else stat.S_IMODE(st.st_mode))
    else:
        return  # sockets, fifos, devices are not copied
    os.lchown(dst, uid, gid)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_in(entries: list[tuple[Path, str, os.stat_result]], root: Path, uid: int, gid: int,
            mode: int | None = None) -> None:
    """Copy (host source, container destination, lstat) triples, parents first."""
    for src, dest, st in entries:
        parent, name = os.path.split(dest.rstrip("/") or "/")
        host_parent = make_dirs(root, parent, uid, gid, chown_new=False)
        _copy_entry(src, host_parent / name, st, uid, gid, mode)
    # directory mtimes last: copying their contents changed them
    for src, dest, st in reversed(entries):
        if stat.S_ISDIR(st.st_mode):
            host = resolve_in_root(root, dest)
            os.utime(host, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def extract_tar(archive: Path, root: Path, dest: str, uid: int | None, gid: int | None) -> None:
    target = make_dirs(root, dest, 0, 0, chown_new=False)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")  # refuses escapes, absolute links, devices
    except tarfile.TarError as exc:
        raise OSError(f"extracting {archive.name}: {exc}") from None
    if uid is not None:
        for dirpath, dirnames, filenames in os.walk(target):
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), uid, gid or 0)


def is_archive(path: Path) -> bool:
    try:
        return path.is_file() and tarfile.is_tarfile(path)
    except OSError:
        return False


def prune_mount_stubs(upper: Path, destinations: list[str], existed: set[str]) -> None:
    """Remove runc's mount-point stubs (and parent dirs copied up only for them) from
    an unmounted upper dir. `existed` are the destinations present before the step."""
    upper = Path(upper)
    for dest in sorted(set(destinations), key=lambda d: -d.count("/")):
        rel = dest.strip("/")
        if not rel:
            continue
        path = upper / rel
        if dest not in existed and os.path.lexists(path) and not path.is_symlink():
            try:
                if path.is_dir():
                    os.rmdir(path)  # only if empty
                elif path.is_file() and path.stat().st_size == 0:
                    path.unlink()
            except OSError:
                continue
        parent = path.parent
        while parent != upper:
            try:
                if os.getxattr(parent, "trusted.overlay.opaque", follow_symlinks=False) == b"y":
                    break
            except OSError:
                pass
            try:
                os.rmdir(parent)  # copied up only to hold the stub; fails if it holds anything
            except OSError:
                break
            parent = parent.parent
