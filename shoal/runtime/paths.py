"""The on-disk layout under the runtime root, in one place.

    <root>/runc/            runc's own state (--root), private to this runtime root
    <root>/exits/<id>       exit code, written by conmon when the container exits
    <root>/sockets/         conmon attach sockets
    <root>/<id>/            the bundle and everything else about one container:
        config.json         OCI spec (root.path points at the caller's rootfs)
        meta.json           what `status`/`list` need after a restart (id, name, stop signal, log path)
        started_at          written when `start` succeeds
        conmon.pid  container.pid  oom (conmon's OOM marker)  shim.log (conmon's stderr)
        attach  ctl  winsz  conmon's attach socket and control fifos
        exec-*.json         process specs of running execs (removed when they end)
        container.log       CRI-format log unless the intent overrides log_path (.1: rotated)
        hosts  resolv.conf  generated when the intent brings none
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class RuntimePaths:
    root: Path

    @property
    def runc_root(self) -> Path:
        return self.root / "runc"

    @property
    def exits(self) -> Path:
        return self.root / "exits"

    @property
    def sockets(self) -> Path:
        return self.root / "sockets"

    def container(self, cid: str) -> Path:
        return self.root / cid

    def exit_file(self, cid: str) -> Path:
        return self.exits / cid

    def config(self, cid: str) -> Path:
        return self.container(cid) / "config.json"

    def meta(self, cid: str) -> Path:
        return self.container(cid) / "meta.json"

    def started_at(self, cid: str) -> Path:
        return self.container(cid) / "started_at"

    def conmon_pid(self, cid: str) -> Path:
        return self.container(cid) / "conmon.pid"

    def container_pid(self, cid: str) -> Path:
        return self.container(cid) / "container.pid"

    def oom(self, cid: str) -> Path:
        return self.container(cid) / "oom"

    def shim_log(self, cid: str) -> Path:
        return self.container(cid) / "shim.log"

    def default_log(self, cid: str) -> Path:
        return self.container(cid) / "container.log"

    def hosts(self, cid: str) -> Path:
        return self.container(cid) / "hosts"

    def resolv_conf(self, cid: str) -> Path:
        return self.container(cid) / "resolv.conf"

    def ensure(self) -> None:
        for path in (self.root, self.runc_root, self.exits, self.sockets):
            path.mkdir(parents=True, exist_ok=True)
