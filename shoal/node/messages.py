"""What the node agent tells users in container states (pure, plus small file reads).

`clean_runtime_error` trims runc's error chain to the part a user can act on
(CreateContainerError); `termination_message` reads what a container left at its
terminationMessagePath, or the tail of its log for FallbackToLogsOnError, within the
kubelet's limits; `fmt_delay` writes back-off delays as Go durations ("10s", "5m0s").
"""

from __future__ import annotations

import re
from pathlib import Path

from shoal.runtime import logs as runtime_logs

MAX_MESSAGE_BYTES = 4096  # the kubelet's cap for a termination message file
FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES = 80, 2048  # ... and for FallbackToLogsOnError


def termination_message(message_file: Path, log_file: Path, *, policy: str, exit_code: int | None) -> str:
    """What the container wrote to its terminationMessagePath, or with policy
    FallbackToLogsOnError and a failed exit, the tail of its log (the kubelet's rules)."""
    try:
        with open(message_file, "rb") as f:
            text = f.read(MAX_MESSAGE_BYTES).decode(errors="replace")
    except OSError:
        text = ""
    if text or policy != "FallbackToLogsOnError" or not exit_code:
        return text
    try:
        lines = runtime_logs.read_all(log_file)[-FALLBACK_LOG_LINES:]
    except OSError:
        return ""
    tail = "\n".join(line.text for line in lines)
    return tail.encode()[-FALLBACK_LOG_BYTES:].decode(errors="ignore")


_RUNC_NOISE = re.compile(r"^(runc (create|start|run) failed: )|(OCI runtime (create|start) failed: )", re.I)


def clean_runtime_error(text: str) -> str:
    """runc's error chain, trimmed to the part a user can act on."""
    text = " ".join(str(text).replace('\\"', '"').split())
    m = re.search(r'exec: "([^"]+)": ([^"]*)', text)
    if m:
        detail = re.sub(r"(: unknown)+\s*$", "", m.group(2)).strip()
        return f'exec: "{m.group(1)}": {detail}'
    m = re.search(r"(exec failed|unable to start container process): (.*)", text)
    if m:
        text = m.group(2)
    return _RUNC_NOISE.sub("", text)[:500]


def fmt_delay(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m0s"
    if seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60)}s"
    return f"{seconds:g}s"
