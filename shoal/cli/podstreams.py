"""`shoal logs POD` and `shoal exec POD` through the API, as kubectl does them: `pods/log`
as a streamed HTTP body, `pods/exec` over WebSocket (`v5.channel.k8s.io`).

A client of the API only (server, CA and token from the state dir's kubeconfig); it
never touches the runtime, so it works the same against a daemon of another user or
machine. Errors are the API's Status messages, printed as kubectl prints them.

The exec relay runs on one event loop: the caller's stdin (a terminal in raw mode with
`-t`) is sent on channel 0, its EOF as v5's close of
stream 0; channels 1/2 go to our stdout/stderr; the Status on channel 3 gives the exit
code (kubectl's rule: the `ExitCode` cause of a `NonZeroExitCode` failure). With `-t`
the terminal's size is sent on channel 4 at the start and on every SIGWINCH.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import json
import os
import signal
import ssl
import struct
import sys
import termios
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

import aiohttp
import click
import httpx

from shoal.api import errors
from shoal.client.http import load_kubeconfig
from shoal.runtime.attach import raw_terminal

PROTOCOL = "v5.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


@dataclass(frozen=True)
class PodRef:
    """A pod's container as the user named it (`-n`, `-c`, `-p`)."""

    namespace: str
    name: str
    container: str | None = None
    previous: bool = False


@dataclass(frozen=True)
class Api:
    server: str
    token: str
    ca: Path | None

    @classmethod
    def from_kubeconfig(cls, path: Path) -> "Api":
        server, ca, token = load_kubeconfig(path)
        return cls(server, token, ca)

    def ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca) if self.ca else None)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def pod_path(self, pod: PodRef, sub: str = "") -> str:
        return f"/api/v1/namespaces/{quote(pod.namespace)}/pods/{quote(pod.name)}" + (f"/{sub}" if sub else "")


def default_container(pod: dict[str, Any]) -> tuple[str, str | None]:
    """(the container kubectl picks when none is named, the notice it prints or None)."""
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    chosen = (pod["metadata"].get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
    if chosen not in names:
        chosen = names[0]
    notice = f'Defaulted container "{chosen}" out of: {", ".join(names)}' if len(names) > 1 else None
    return chosen, notice


def exit_code_of(status: dict[str, Any]) -> tuple[int, str | None]:
    """(exit code, message to print) of the Status on the error channel."""
    if status.get("status") == "Success":
        return 0, None
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                with contextlib.suppress(ValueError, TypeError):
                    return int(cause.get("message")), None
    return 1, status.get("message") or "exec failed"


def _status_message(body: bytes, code: int) -> str:
    try:
        status = json.loads(body)
        if isinstance(status, dict) and status.get("kind") == "Status":
            return str(status.get("message"))
    except ValueError:
        pass
    return f"the API answered {code}: {body[:200].decode(errors='replace')}"


async def _container(client: httpx.AsyncClient, api: Api, pod: PodRef) -> str:
    if pod.container:
        return pod.container
    response = await client.get(api.pod_path(pod))
    if response.status_code != 200:
        raise click.ClickException(_status_message(response.content, response.status_code))
    chosen, notice = default_container(response.json())
    if notice:
        click.echo(notice, err=True)
    return chosen


async def print_logs(api: Api, pod: PodRef, *, follow: bool, tail: int | None, since: dt.datetime | None,
                     timestamps: bool) -> None:
    """Stream the pod's log to stdout until it ends (or forever with `follow`)."""
    async with httpx.AsyncClient(base_url=api.server, headers=api.headers(), verify=api.ssl(),
                                 timeout=httpx.Timeout(30, read=None)) as client:
        params: dict[str, str] = {"container": await _container(client, api, pod)}
        if follow:
            params["follow"] = "true"
        if pod.previous:
            params["previous"] = "true"
        if timestamps:
            params["timestamps"] = "true"
        if tail is not None:
            params["tailLines"] = str(tail)
        if since is not None:
            params["sinceTime"] = since.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        async with client.stream("GET", api.pod_path(pod, "log"), params=params) as response:
            if response.status_code != 200:
                raise click.ClickException(_status_message(await response.aread(), response.status_code))
            out = sys.stdout.buffer
            async for chunk in response.aiter_raw():
                out.write(chunk)
                out.flush()


def _terminal_size(fd: int) -> tuple[int, int] | None:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return (cols, rows) if cols and rows else None


async def exec_in_pod(api: Api, pod: PodRef, command: Sequence[str], *, stdin: bool, tty: bool) -> int:
    """Run `command` in the pod through `pods/exec`; the process's exit code."""
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(headers=api.headers()) as http:
        async with httpx.AsyncClient(base_url=api.server, headers=api.headers(), verify=api.ssl()) as client:
            container = await _container(client, api, pod)
        query = [("container", container), ("stdout", "true"), ("stderr", "false" if tty else "true"),
                 ("stdin", "true" if stdin else "false"), ("tty", "true" if tty else "false")]
        query += [("command", arg) for arg in command]
        try:
            ws = await http.ws_connect(api.server + api.pod_path(pod, "exec"), params=query, ssl=api.ssl(),
                                       protocols=[PROTOCOL], max_msg_size=0, autoping=True)
        except aiohttp.WSServerHandshakeError as exc:
            raise click.ClickException(await _handshake_message(http, api, pod, query, exc)) from None
        async with ws:
            status: dict[str, Any] | None = None
            if tty:
                size = _terminal_size(0)
                if size is not None:
                    await ws.send_bytes(bytes([RESIZE]) + json.dumps({"Width": size[0], "Height": size[1]}).encode())

                    def on_winch() -> None:
                        new = _terminal_size(0)
                        if new is not None and not ws.closed:
                            loop.create_task(ws.send_bytes(
                                bytes([RESIZE]) + json.dumps({"Width": new[0], "Height": new[1]}).encode()))

                    loop.add_signal_handler(signal.SIGWINCH, on_winch)
            feeder = loop.create_task(_feed_stdin(ws)) if stdin else None
            try:
                with raw_terminal(0) if tty else contextlib.nullcontext():
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                            continue
                        channel, data = msg.data[0], msg.data[1:]
                        if channel in (STDOUT, STDERR):
                            out = sys.stdout.buffer if channel == STDOUT else sys.stderr.buffer
                            out.write(data)
                            out.flush()
                        elif channel == ERROR:
                            with contextlib.suppress(ValueError):
                                status = json.loads(data)
            finally:
                if tty:
                    loop.remove_signal_handler(signal.SIGWINCH)
                if feeder is not None:
                    feeder.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await feeder
        if status is None:
            raise click.ClickException("the exec stream ended without an exit status")
        code, message = exit_code_of(status)
        if message:
            raise click.ClickException(message)
        return code


async def _feed_stdin(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Our stdin to channel 0; EOF closes the remote stdin (v5). A pipe or terminal is
    watched by the loop (a cancelled read leaves no thread blocked in it); a regular
    file, which epoll refuses, is read directly: it never blocks."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    readable: asyncio.Queue[None] = asyncio.Queue()
    try:
        loop.add_reader(fd, readable.put_nowait, None)
        watched = True
    except PermissionError:
        watched = False
    try:
        while not ws.closed:
            if watched:
                await readable.get()
            try:
                data = os.read(fd, 32768)
            except BlockingIOError:
                continue
            if not data:
                await ws.send_bytes(bytes([CLOSE, STDIN]))
                return
            await ws.send_bytes(bytes([STDIN]) + data)
    finally:
        if watched:
            loop.remove_reader(fd)


async def _handshake_message(http: aiohttp.ClientSession, api: Api, pod: PodRef, query: list[tuple[str, str]],
                             exc: aiohttp.WSServerHandshakeError) -> str:
    """The Status message behind a refused upgrade (asked again without the upgrade,
    since aiohttp does not keep the refused body)."""
    async with http.get(api.server + api.pod_path(pod, "exec"), params=query, ssl=api.ssl()) as response:
        return _status_message(await response.read(), exc.status)


def kubeconfig_api(path: Path) -> Api:
    """The API behind a kubeconfig, or a ClickException saying what is wrong with it."""
    try:
        return Api.from_kubeconfig(path)
    except errors.StatusError as exc:
        raise click.ClickException(exc.message) from None
