"""The host's pip configuration, passed into RUN containers (so `pip install` in a
build uses the same index, mirrors, certificates and constraints as the host).

`pip_settings()` asks the host pip (`python -m pip config list`: config files and PIP_*
variables); `pip_env()` turns that into PIP_* variables (pure); `pip_mounts()` lists the
local files and directories those settings name (file:// indexes, find-links, cert,
constraint files) to bind read-only at the same paths. No host or URL is written in
this repository: whatever the machine is configured with is what the build sees.
These values are not part of any cache key (they describe the machine, not the image).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from urllib.parse import unquote, urlparse

_LINE = re.compile(r"^(?P<scope>[^.]*)\.(?P<key>[A-Za-z0-9_-]+)=(?P<value>.*)$")


def pip_settings(python: str | None = None) -> dict[str, str]:
    try:
        proc = subprocess.run([python or sys.executable, "-m", "pip", "config", "list"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return parse_config_list(proc.stdout) if proc.returncode == 0 else {}


def parse_config_list(text: str) -> dict[str, str]:
    """`global.index-url='...'` lines -> {key: value}; later scopes win, as in pip."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if not m or m.group("scope") not in ("global", "install", ":env:", "user", "site", "download"):
            continue
        value = m.group("value").strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[m.group("key")] = value
    return out


def pip_env(settings: dict[str, str]) -> dict[str, str]:
    return {"PIP_" + key.upper().replace("-", "_"): value for key, value in settings.items()}


def _local_path(word: str) -> str | None:
    if word.startswith("file://"):
        return unquote(urlparse(word).path)
    if word.startswith("/"):
        return word
    return None


def pip_mounts(settings: dict[str, str]) -> list[str]:
    """Host paths to bind read-only (an index dir `.../simple` brings its parent, where
    its relative file links point)."""
    paths: set[str] = set()
    for value in settings.values():
        for word in value.split():
            path = _local_path(word)
            if not path or not os.path.exists(path):
                continue
            path = os.path.normpath(path)
            if os.path.isdir(path) and os.path.basename(path) == "simple":
                path = os.path.dirname(path)
            paths.add(path)
    # a path inside another bound path needs no mount of its own
    return sorted(p for p in paths if not any(p != q and p.startswith(q + "/") for q in paths))
