"""The build context: a directory, filtered by `.dockerignore`, and content hashes.

`.dockerignore` follows Docker's rules (patterns relative to the context root, `**`,
`!` exceptions, last match wins) through docker-py's port of moby's pattern matcher.
`sources()` expands COPY/ADD source patterns (globs as filepath.Match: `*` does not
cross `/`), refusing paths that leave the context. `content_hash()` is the cache input
of a COPY/ADD: relative paths, file types, modes and contents of every file it reads,
after ignore rules. Blocking file I/O; the builder calls it in a thread.
"""

from __future__ import annotations

import glob
import hashlib
import os
import stat
from pathlib import Path
from typing import Iterable, Iterator

from shoal.builder.errors import ContextError

GLOB_CHARS = set("*?[")


def read_dockerignore(root: Path) -> list[str]:
    path = Path(root) / ".dockerignore"
    if not path.is_file():
        return []
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        body = os.path.normpath(line[1:].strip() if neg else line).lstrip("/")
        patterns.append(("!" if neg else "") + body)
    return patterns


class BuildContext:
    def __init__(self, root: Path, ignore: list[str] | None = None):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ContextError(f"build context {root}: not a directory")
        self.patterns = read_dockerignore(self.root) if ignore is None else ignore
        self._matcher = None
        if self.patterns:
            from docker.utils.build import PatternMatcher  # docker-py's port of moby's matcher

            self._matcher = PatternMatcher(self.patterns)

    def ignored(self, rel: str) -> bool:
        return bool(self._matcher and rel not in ("", ".") and self._matcher.matches(rel))

    def sources(self, pattern: str, line: int, keyword: str) -> list[str]:
        """Context-relative paths matched by one COPY/ADD source (not ignored)."""
        rel = os.path.normpath(pattern.lstrip("/")) if pattern.strip("/") else "."
        if rel == ".." or rel.startswith("../"):
            raise ContextError(f"source {pattern!r} is outside the build context", line, keyword)
        if GLOB_CHARS & set(rel):
            hits = sorted(os.path.relpath(p, self.root) for p in glob.glob(str(self.root / rel)))
            hits = [h for h in hits if not self.ignored(h)]
            if not hits:
                raise ContextError(f"source {pattern!r}: no files in the build context match", line, keyword)
            return hits
        path = self.root / rel
        if not os.path.lexists(path) or self.ignored(rel):
            why = " (excluded by .dockerignore)" if os.path.lexists(path) else ""
            raise ContextError(f"source {pattern!r} not found in the build context{why}", line, keyword)
        return [rel]

    def walk(self, rel: str) -> Iterator[tuple[str, os.stat_result]]:
        """(relative path, lstat) of `rel` and, for a directory, everything under it that
        is not ignored; sorted, directories before their contents."""
        top = self.root / rel
        st = os.lstat(top)
        yield rel, st
        if not stat.S_ISDIR(st.st_mode):
            return
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            base = os.path.relpath(dirpath, self.root)
            keep = []
            for name in dirnames:
                child = os.path.normpath(os.path.join(base, name))
                if not self.ignored(child) or self._has_exception_under(child):
                    keep.append(name)
            dirnames[:] = keep
            for name in sorted(dirnames + filenames):
                child = os.path.normpath(os.path.join(base, name))
                if self.ignored(child):
                    continue
                yield child, os.lstat(self.root / child)

    def _has_exception_under(self, rel: str) -> bool:
        return any(p.startswith("!") and p[1:].startswith(rel + "/") for p in self.patterns)

    def content_hash(self, rels: Iterable[str]) -> str:
        h = hashlib.sha256()
        for top in rels:
            for rel, st in self.walk(top):
                h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
                path = self.root / rel
                if stat.S_ISREG(st.st_mode):
                    with open(path, "rb") as f:
                        for chunk in iter(lambda: f.read(1 << 20), b""):
                            h.update(chunk)
                elif stat.S_ISLNK(st.st_mode):
                    h.update(os.readlink(path).encode())
                h.update(b"\0")
        return "sha256:" + h.hexdigest()
