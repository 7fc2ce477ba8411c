"""The `process` section: args (Kubernetes command/args over Entrypoint/Cmd), env, cwd, user."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from shoal.runtime.errors import SpecError
from shoal.runtime.intent import ContainerIntent
from shoal.runtime.spec.users import resolve_user

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def resolve_args(intent: ContainerIntent, image_config: Mapping[str, Any]) -> list[str]:
    """Kubernetes rules: command replaces Entrypoint (and drops Cmd); args replace Cmd."""
    entrypoint = list(image_config.get("Entrypoint") or [])
    cmd = list(image_config.get("Cmd") or [])
    if intent.command is not None:
        argv = list(intent.command) + list(intent.args or [])
    elif intent.args is not None:
        argv = entrypoint + list(intent.args)
    else:
        argv = entrypoint + cmd
    if not argv:
        raise SpecError("command", "no command: the image has no Entrypoint/Cmd and none was given")
    return [str(a) for a in argv]


def env_pairs(env: Mapping[str, str] | Sequence[str] | None, field: str) -> list[tuple[str, str]]:
    if env is None:
        return []
    if isinstance(env, Mapping):
        return [(str(k), str(v)) for k, v in env.items()]
    pairs = []
    for i, item in enumerate(env):
        key, sep, value = str(item).partition("=")
        if not key:
            raise SpecError(f"{field}[{i}]", f"expected KEY=VALUE, got {item!r}")
        pairs.append((key, value))
    return pairs


def merge_env(image_env: Sequence[str] | None, env: Mapping[str, str] | Sequence[str] | None,
              extra_first: Mapping[str, str] = {}) -> list[str]:
    """Image env, then the container's; a later key replaces an earlier one in place."""
    merged: dict[str, str] = dict(extra_first)
    for key, value in env_pairs(image_env, "image.Env") + env_pairs(env, "env"):
        merged[key] = value
    merged.setdefault("PATH", DEFAULT_PATH)
    return [f"{k}={v}" for k, v in merged.items()]


def build_process(intent: ContainerIntent, image_config: Mapping[str, Any], hostname: str) -> dict[str, Any]:
    cwd = intent.working_dir or image_config.get("WorkingDir") or "/"
    if not cwd.startswith("/"):
        raise SpecError("workingDir", f"must be an absolute path, got {cwd!r}")
    sec = intent.security
    user = resolve_user(intent.rootfs, intent.user or image_config.get("User"))
    uid = sec.run_as_user if sec.run_as_user is not None else user.uid
    gid = sec.run_as_group if sec.run_as_group is not None else user.gid
    if sec.run_as_non_root and uid == 0:
        raise SpecError("securityContext.runAsNonRoot",
                        "the container would run as root (uid 0); set runAsUser or use an image with a non-root USER")
    for field, value in (("securityContext.runAsUser", uid), ("securityContext.runAsGroup", gid)):
        if not 0 <= value < 2**32:
            raise SpecError(field, f"expected 0..4294967295, got {value}")
    extra = {"HOSTNAME": hostname}
    if intent.tty:
        extra["TERM"] = "xterm"
    env = merge_env(image_config.get("Env"), intent.env, extra)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home if uid == user.uid else '/'}")
    proc: dict[str, Any] = {
        "terminal": intent.tty,
        "user": {"uid": uid, "gid": gid},
        "args": resolve_args(intent, image_config),
        "env": env,
        "cwd": cwd,
    }
    if user.additional_gids and uid == user.uid:
        proc["user"]["additionalGids"] = list(user.additional_gids)
    return proc
