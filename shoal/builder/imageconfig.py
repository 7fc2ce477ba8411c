"""Image config bookkeeping (pure): the OCI config a stage carries between steps.

`StageState` is the value each step transforms: the layers so far, the full OCI config
(`config` section: Env, Cmd, Entrypoint, User, WorkingDir, ExposedPorts, Labels,
StopSignal, Healthcheck, Volumes, Shell) and the history, and a `chain` id that names
everything that produced it (the parent of every cache key). Steps return new states.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from typing import Sequence

from shoal import timestamps
from shoal.images import mediatypes

LayerSpec = tuple[str, str, int, str]
DEFAULT_SHELL = ["/bin/sh", "-c"]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


@dataclasses.dataclass(frozen=True)
class StageState:
    chain: str
    layers: tuple[LayerSpec, ...]
    config: dict
    """The whole OCI image config (architecture, os, config, history; rootfs at commit)."""

    # LayeredImage protocol for ImageStore.snapshots.prepare
    @property
    def digest(self) -> str:
        return self.chain

    @property
    def diff_ids(self) -> list[str]:
        return [layer[1] for layer in self.layers]

    @property
    def layer_digests(self) -> list[str]:
        return [layer[0] for layer in self.layers]

    @property
    def runtime(self) -> dict:
        return self.config.get("config") or {}

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.runtime.get("Env") or []:
            key, _, value = item.partition("=")
            out[key] = value
        return out


class _Layered:
    """Adapter: snapshots.prepare wants `.layers` to be blob digests."""

    def __init__(self, state: StageState):
        self.digest = state.chain
        self.layers = state.layer_digests
        self.diff_ids = state.diff_ids


def layered(state: StageState) -> _Layered:
    return _Layered(state)


def chain_id(*parts: object) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def timestamp(epoch: int) -> str:
    return timestamps.format_time(epoch)


def scratch_config() -> dict:
    plat = mediatypes.host_platform()
    return {"architecture": plat["architecture"], "os": plat["os"], "config": {}, "rootfs": {"type": "layers", "diff_ids": []},
            "history": []}


def with_runtime(state: StageState, chain: str, **changes) -> StageState:
    """A new state whose `config` section has `changes` (None deletes a key)."""
    config = copy.deepcopy(state.config)
    section = config.setdefault("config", {})
    for key, value in changes.items():
        if value is None:
            section.pop(key, None)
        else:
            section[key] = value
    return StageState(chain, state.layers, config)


def with_history(state: StageState, created_by: str, epoch: int, empty_layer: bool,
                 layer: LayerSpec | None = None, chain: str | None = None) -> StageState:
    config = copy.deepcopy(state.config)
    entry = {"created": timestamp(epoch), "created_by": created_by, "comment": "shoal build"}
    if empty_layer:
        entry["empty_layer"] = True
    config.setdefault("history", []).append(entry)
    config["created"] = timestamp(epoch)
    layers = state.layers + ((layer,) if layer else ())
    return StageState(chain or state.chain, layers, config)


def set_env(env_list: Sequence[str] | None, pairs: Sequence[tuple[str, str]]) -> list[str]:
    merged: dict[str, str] = {}
    for item in env_list or []:
        key, _, value = item.partition("=")
        merged[key] = value
    for key, value in pairs:
        merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


def parse_duration_ns(text: str) -> int:
    """Go durations as Docker writes them (30s, 1m30s, 500ms) -> nanoseconds."""
    pos, total = 0, 0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            raise ValueError(text)
        total += int(float(m.group(1)) * _UNITS[m.group(2)])
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(text)
    return total


def exposed_port(text: str) -> str:
    port, _, proto = text.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise ValueError(f"protocol {proto!r}")
    if "-" in port:
        low, _, high = port.partition("-")
        if not (low.isdigit() and high.isdigit() and 0 < int(low) <= int(high) < 65536):
            raise ValueError(port)
    elif not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(port)
    return f"{port}/{proto}"


def final_config(state: StageState) -> dict:
    """The config as committed: rootfs is filled by ImageStore.commit_image."""
    config = copy.deepcopy(state.config)
    config["rootfs"] = {"type": "layers", "diff_ids": state.diff_ids}
    return config
