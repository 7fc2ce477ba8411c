"""Which Debian mirror to bootstrap from: read from apt's own configuration.

Nothing in shoal hard-codes a mirror host: `mirror_lines` reads the one-line
(`sources.list`, `*.list`) and deb822 (`*.sources`) formats and returns the `deb` lines
that serve the requested suite, in the form mmdebstrap accepts as a mirror argument.
Parsing is pure (`parse_sources`); `read_apt_sources` does the file I/O.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from shoal.images.errors import BootstrapError


@dataclasses.dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def parse_sources(filename: str, text: str) -> list[AptSource]:
    """Binary (`deb`) sources in one apt sources file; `deb-src` and disabled ones skipped."""
    out: list[AptSource] = []
    if filename.endswith(".sources"):
        for para in text.split("\n\n"):
            fields: dict[str, str] = {}
            key = None
            for line in para.splitlines():
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if line[0].isspace() and key:
                    fields[key] += " " + line.strip()
                    continue
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                out.append(AptSource(uri, tuple(fields.get("suites", "").split()),
                                     tuple(fields.get("components", "").split())))
    else:
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            words = words[1:]
            if words and words[0].startswith("["):
                while words and not words[0].endswith("]"):
                    words.pop(0)
                words = words[1:]
            if len(words) >= 2:
                out.append(AptSource(words[0], (words[1],), tuple(words[2:])))
    return out


def read_apt_sources(etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    files = [etc_apt / "sources.list"]
    d = etc_apt / "sources.list.d"
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources"))
    sources: list[AptSource] = []
    for f in files:
        if f.is_file():
            sources += parse_sources(f.name, f.read_text(errors="replace"))
    return sources


def mirror_lines(sources: list[AptSource], suite: str) -> list[str]:
    """`deb URI SUITE COMPONENTS` lines for mmdebstrap; BootstrapError if none serves it."""
    lines = [f"deb {s.uri} {suite} {' '.join(s.components) or 'main'}"
             for s in sources if suite in s.suites]
    if not lines:
        known = sorted({x for s in sources for x in s.suites})
        raise BootstrapError(f"suite {suite!r}: no apt source serves it (apt knows {known})")
    return lines
