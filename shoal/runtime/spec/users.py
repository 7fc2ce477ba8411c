"""User and group lookups in a container rootfs (/etc/passwd, /etc/group).

Reads files of the rootfs only, never the host's. A missing file is an empty table.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from shoal.runtime.errors import SpecError


@dataclasses.dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


def _table(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(rootfs: Path, spec: str | None, field: str = "user") -> ResolvedUser:
    """Resolve "uid", "uid:gid", "name", "name:group" (Docker's forms) against the rootfs."""
    spec = (spec or "").strip()
    if not spec:
        return ResolvedUser(0, 0, home="/root")
    user_part, _, group_part = spec.partition(":")
    passwd = _table(rootfs / "etc" / "passwd")
    entry = None
    if user_part.isdigit():
        uid = int(user_part)
        entry = next((row for row in passwd if len(row) >= 4 and row[2] == user_part), None)
    else:
        entry = next((row for row in passwd if len(row) >= 4 and row[0] == user_part), None)
        if entry is None:
            raise SpecError(field, f"user {user_part!r} not found in the image's /etc/passwd")
        uid = int(entry[2])
    gid = int(entry[3]) if entry else 0
    home = entry[5] if entry and len(entry) > 5 and entry[5] else "/"
    groups = _table(rootfs / "etc" / "group")
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            row = next((r for r in groups if len(r) >= 3 and r[0] == group_part), None)
            if row is None:
                raise SpecError(field, f"group {group_part!r} not found in the image's /etc/group")
            gid = int(row[2])
    extra: list[int] = []
    if entry is not None:
        for row in groups:
            if len(row) >= 4 and entry[0] in row[3].split(",") and row[2].isdigit():
                if int(row[2]) != gid and int(row[2]) not in extra:
                    extra.append(int(row[2]))
    return ResolvedUser(uid, gid, tuple(extra), home)
