"""Attaching the caller's terminal to a container's stdio through conmon (`run -it`).

conmon listens on `<bundle>/attach` (a SOCK_SEQPACKET unix socket). What we send is the
container's stdin, raw; what we receive are packets whose first byte names the stream
(2 stdout, 3 stderr) followed by the data. The socket closes when the container's
output ends. Window size goes through conmon's control fifo `<bundle>/ctl` as
"1 <rows> <cols>\\n". Blocking (select-based): meant for the CLI's foreground, not the
daemon's loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import struct
import termios
import tty as tty_mod
from pathlib import Path
from typing import Iterator

STREAM_STDOUT = 2
STREAM_STDERR = 3
BUFFER = 8192 + 1


def connect(socket_path: Path) -> socket.socket:
    """Connect through /proc/self/fd so long state-dir paths fit sun_path (108 bytes)."""
    fd = os.open(socket_path, os.O_PATH)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.connect(f"/proc/self/fd/{fd}")
        return sock
    finally:
        os.close(fd)


def send_window_size(ctl_path: Path, fd: int) -> None:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        ctl = os.open(ctl_path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(ctl, f"1 {rows} {cols}\n".encode())
    finally:
        os.close(ctl)


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty_mod.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def relay(sock: socket.socket, *, stdin_fd: int | None, stdout_fd: int, stderr_fd: int) -> None:
    """Copy stdin -> socket and socket -> stdout/stderr until the container's output ends."""
    watched = [sock] + ([stdin_fd] if stdin_fd is not None else [])
    while True:
        readable, _, _ = select.select(watched, [], [])
        if sock in readable:
            packet = sock.recv(BUFFER)
            if not packet:
                return
            target = stderr_fd if packet[0] == STREAM_STDERR else stdout_fd
            os.write(target, packet[1:])
        if stdin_fd is not None and stdin_fd in readable:
            data = os.read(stdin_fd, 4096)
            if data:
                sock.sendall(data)
            else:  # EOF: close the container's stdin (conmon does unless told to leave it open)
                sock.shutdown(socket.SHUT_WR)
                watched.remove(stdin_fd)


def attach_terminal(bundle: Path, sock: socket.socket, *, tty: bool, stdin: bool) -> None:
    """Relay the caller's stdio; raw mode and window-size updates when it is a terminal."""
    stdin_fd = 0 if stdin else None
    if tty and os.isatty(0):
        send_window_size(bundle / "ctl", 0)
        previous = signal.signal(signal.SIGWINCH, lambda *_: send_window_size(bundle / "ctl", 0))
        try:
            with raw_terminal(0):
                relay(sock, stdin_fd=stdin_fd, stdout_fd=1, stderr_fd=2)
        finally:
            signal.signal(signal.SIGWINCH, previous)
    else:
        relay(sock, stdin_fd=stdin_fd, stdout_fd=1, stderr_fd=2)
