"""Metadata instructions (pure): ENV, WORKDIR, USER, EXPOSE, LABEL, CMD, ENTRYPOINT,
SHELL, STOPSIGNAL, HEALTHCHECK, VOLUME, MAINTAINER change only the image config.

`apply_metadata(state, ins, variables)` returns the next `StageState` with a history
entry marked `empty_layer`; its chain id covers the instruction with variables
expanded, so a later RUN whose environment changed gets a new cache key.
"""

from __future__ import annotations

import posixpath
import signal
from typing import Mapping

from shoal.builder import imageconfig as ic
from shoal.builder.dockerfile import Instruction, exec_form, parse_key_values, shell_words
from shoal.builder.errors import DockerfileSyntaxError
from shoal.builder.expand import expand

METADATA = {"ENV", "WORKDIR", "USER", "EXPOSE", "LABEL", "CMD", "ENTRYPOINT", "SHELL", "STOPSIGNAL",
            "HEALTHCHECK", "VOLUME", "MAINTAINER"}
EXPANDED = {"ENV", "WORKDIR", "USER", "EXPOSE", "LABEL", "STOPSIGNAL", "VOLUME"}


def _expand(ins: Instruction, text: str, variables: Mapping[str, str]) -> str:
    try:
        return expand(text, variables)
    except ValueError as exc:
        raise DockerfileSyntaxError(str(exc), ins.line, ins.keyword) from None


def command_words(ins: Instruction, shell: list[str]) -> list[str]:
    """Exec form as written; shell form wrapped in the stage's SHELL."""
    if ins.exec_form is not None:
        return list(ins.exec_form)
    return list(shell) + [ins.value]


def workdir_of(state: ic.StageState) -> str:
    return state.runtime.get("WorkingDir") or "/"


def apply_metadata(state: ic.StageState, ins: Instruction, variables: Mapping[str, str], epoch: int,
                   cmd_set_in_stage: bool) -> ic.StageState:
    kw = ins.keyword
    rt = state.runtime
    value = _expand(ins, ins.value, variables) if kw in EXPANDED else ins.value
    shell = rt.get("Shell") or ic.DEFAULT_SHELL
    changes: dict = {}
    if kw == "ENV":
        changes["Env"] = ic.set_env(rt.get("Env"), parse_key_values(value, ins.line, kw))
    elif kw == "WORKDIR":
        changes["WorkingDir"] = posixpath.normpath(posixpath.join(workdir_of(state), value))
    elif kw == "USER":
        changes["User"] = value.strip()
    elif kw == "EXPOSE":
        ports = dict(rt.get("ExposedPorts") or {})
        for word in shell_words(value, ins.line, kw):
            try:
                ports[ic.exposed_port(word)] = {}
            except ValueError:
                raise DockerfileSyntaxError(f"port {word!r}: expected PORT[/tcp|udp|sctp]", ins.line, kw) from None
        changes["ExposedPorts"] = ports
    elif kw == "LABEL":
        labels = dict(rt.get("Labels") or {})
        labels.update(parse_key_values(value, ins.line, kw, legacy_ok=False))
        changes["Labels"] = labels
    elif kw == "MAINTAINER":
        config = dict(state.config, author=value.strip())
        state = ic.StageState(state.chain, state.layers, config)
    elif kw == "CMD":
        changes["Cmd"] = command_words(ins, shell)
    elif kw == "ENTRYPOINT":
        changes["Entrypoint"] = command_words(ins, shell)
        if not cmd_set_in_stage:
            changes["Cmd"] = None  # Docker: a new ENTRYPOINT drops the base image's CMD
    elif kw == "SHELL":
        if not ins.exec_form:
            raise DockerfileSyntaxError('expects the JSON form, e.g. SHELL ["/bin/bash", "-c"]', ins.line, kw)
        changes["Shell"] = list(ins.exec_form)
    elif kw == "STOPSIGNAL":
        name = value.strip().upper()
        candidate = name if name.startswith("SIG") else f"SIG{name}"
        if not (name.isdigit() or candidate in signal.Signals.__members__):
            raise DockerfileSyntaxError(f"unknown signal {value.strip()!r}", ins.line, kw)
        changes["StopSignal"] = name if name.isdigit() else candidate
    elif kw == "HEALTHCHECK":
        changes["Healthcheck"] = healthcheck(ins, shell)
    elif kw == "VOLUME":
        words = ins.exec_form if ins.exec_form is not None else shell_words(value, ins.line, kw)
        if not words:
            raise DockerfileSyntaxError("requires at least one path", ins.line, kw)
        volumes = dict(rt.get("Volumes") or {})
        volumes.update({w: {} for w in words})
        changes["Volumes"] = volumes
    chain = ic.chain_id(state.chain, kw, ins.flags, value, ins.exec_form)
    if changes:
        state = ic.with_runtime(state, chain, **changes)
    created_by = f"{kw} {value}".strip() if kw != "CMD" and kw != "ENTRYPOINT" else ins.source
    return ic.with_history(state, created_by, epoch, empty_layer=True, chain=chain)


def healthcheck(ins: Instruction, shell: list[str]) -> dict:
    value = ins.value.strip()
    head, _, rest = value.partition(" ")
    if head.upper() == "NONE" and not rest.strip():
        return {"Test": ["NONE"]}
    if head.upper() != "CMD" or not rest.strip():
        raise DockerfileSyntaxError("expected 'HEALTHCHECK [OPTIONS] CMD command' or 'HEALTHCHECK NONE'",
                                    ins.line, ins.keyword)
    words = exec_form(rest)
    check: dict = {"Test": ["CMD", *words] if words is not None else ["CMD-SHELL", rest.strip()]}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                      ("start-interval", "StartInterval")):
        if ins.flag(flag):
            try:
                check[key] = ic.parse_duration_ns(ins.flag(flag))
            except ValueError:
                raise DockerfileSyntaxError(f"--{flag}={ins.flag(flag)!r}: expected a duration like 30s",
                                            ins.line, ins.keyword) from None
    if ins.flag("retries"):
        if not ins.flag("retries").isdigit():
            raise DockerfileSyntaxError(f"--retries={ins.flag('retries')!r}: expected a number", ins.line, ins.keyword)
        check["Retries"] = int(ins.flag("retries"))
    return check
