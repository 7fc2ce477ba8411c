"""`RUN --mount=...` options (pure): cache, secret, tmpfs and bind mounts.

    type=cache,target=/root/.cache/pip[,id=ID][,sharing=shared][,readonly]
    type=secret,id=ID[,target=/run/secrets/ID][,required=true]
    type=tmpfs,target=/tmp[,size=BYTES]
    type=bind,target=/src[,source=PATH][,rw]           (PATH in the build context)

Cache mounts persist between builds outside every layer; secrets are bound read-only
from the file given with `--secret id=ID,src=FILE` and never enter a layer or a cache
key (only their ids do). `runtime_mounts` turns them into the RUN container's mounts.
"""

from __future__ import annotations

import dataclasses
import posixpath
from pathlib import Path
from typing import Callable, Mapping, Sequence

from shoal.builder.errors import DockerfileSyntaxError
from shoal.runtime import Mount

TYPES = {"cache", "secret", "tmpfs", "bind"}


@dataclasses.dataclass(frozen=True)
class RunMount:
    type: str
    target: str
    id: str | None = None
    source: str | None = None
    readonly: bool = False
    required: bool = False
    size: int | None = None

    def cache_key_part(self) -> list:
        return [self.type, self.target, self.id, self.source, self.readonly]


def parse_mount(text: str, line: int, workdir: str = "/") -> RunMount:
    opts: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        opts[key.strip().lower()] = value.strip() if sep else "true"
    kind = opts.pop("type", "bind")
    if kind not in TYPES:
        raise DockerfileSyntaxError(f"--mount type={kind!r}: expected one of {sorted(TYPES)}", line, "RUN")
    target = opts.pop("target", None) or opts.pop("dst", None) or opts.pop("destination", None)
    ident = opts.pop("id", None)
    if kind == "secret":
        if not ident and not target:
            raise DockerfileSyntaxError("--mount type=secret needs id= (or target=)", line, "RUN")
        ident = ident or posixpath.basename(target)
        target = target or f"/run/secrets/{ident}"
    if not target:
        raise DockerfileSyntaxError(f"--mount type={kind} needs target=", line, "RUN")
    target = posixpath.normpath(posixpath.join(workdir, target))
    readonly = opts.pop("readonly", opts.pop("ro", "false")).lower() in ("true", "1", "")
    if kind == "bind":
        readonly = opts.pop("rw", opts.pop("readwrite", "false")).lower() not in ("true", "1", "")
        if "from" in opts:
            raise DockerfileSyntaxError("--mount type=bind,from=... is not supported; use COPY --from", line, "RUN")
    size = None
    if "size" in opts:
        raw = opts.pop("size")
        if not raw.isdigit():
            raise DockerfileSyntaxError(f"--mount size={raw!r}: expected bytes", line, "RUN")
        size = int(raw)
    required = opts.pop("required", "false").lower() in ("true", "1", "")
    source = opts.pop("source", None) or opts.pop("src", None)
    for ignored in ("sharing", "mode", "uid", "gid"):
        opts.pop(ignored, None)
    if opts:
        raise DockerfileSyntaxError(f"--mount: unknown option(s) {sorted(opts)} for type={kind}", line, "RUN")
    return RunMount(kind, target, ident or (target if kind == "cache" else None), source, readonly, required, size)


def runtime_mounts(run_mounts: Sequence[RunMount], *, cache_dir: Callable[[str], Path],
                   secrets: Mapping[str, Path], context_root: Path) -> list[Mount]:
    """The runtime mounts of a RUN step's --mount options: cache dirs (`cache_dir(id)`),
    secrets given with --secret (a missing optional one is left out), tmpfs, and binds
    from the build context."""
    out: list[Mount] = []
    for m in run_mounts:
        if m.type == "cache":
            out.append(Mount(m.target, str(cache_dir(m.id or m.target)), read_only=m.readonly))
        elif m.type == "secret":
            src = secrets.get(m.id or "")
            if src is not None:
                out.append(Mount(m.target, str(Path(src).resolve()), read_only=True))
        elif m.type == "tmpfs":
            opts = ("nosuid", "nodev") + ((f"size={m.size}",) if m.size else ())
            out.append(Mount(m.target, "tmpfs", type="tmpfs", options=opts))
        elif m.type == "bind":
            src = context_root / (m.source or ".").lstrip("/")
            out.append(Mount(m.target, str(src), read_only=m.readonly))
    return out
