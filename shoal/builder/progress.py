"""Build progress: one line per step event (plain), or rich-styled lines on a TTY.

The builder talks to a `Progress`; `PlainProgress` writes BuildKit-like plain lines
(`#3 [build 2/4] RUN make`, `#3 CACHED`, `#3 DONE 1.2s`, step output prefixed by the
step number), `RichProgress` renders the same events with rich (colors, CACHED marked,
a live spinner of running steps). Both are safe to call from one event loop; parallel
stages interleave whole lines.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    def start(self, step: int, title: str) -> None: ...
    def cached(self, step: int) -> None: ...
    def output(self, step: int, line: str) -> None: ...
    def done(self, step: int) -> None: ...
    def failed(self, step: int, message: str) -> None: ...
    def info(self, message: str) -> None: ...
    def close(self) -> None: ...


class PlainProgress:
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self._started: dict[int, float] = {}

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, step: int, title: str) -> None:
        self._started[step] = time.monotonic()
        self._write(f"#{step} {title}")

    def cached(self, step: int) -> None:
        self._write(f"#{step} CACHED")

    def output(self, step: int, line: str) -> None:
        self._write(f"#{step} {time.monotonic() - self._started.get(step, time.monotonic()):.2f} {line}")

    def done(self, step: int) -> None:
        self._write(f"#{step} DONE {time.monotonic() - self._started.get(step, time.monotonic()):.1f}s")

    def failed(self, step: int, message: str) -> None:
        self._write(f"#{step} ERROR: {message}")

    def info(self, message: str) -> None:
        self._write(message)

    def close(self) -> None:
        pass


class RichProgress:
    def __init__(self, stream: TextIO | None = None):
        from rich.console import Console
        from rich.live import Live
        from rich.spinner import Spinner
        from rich.table import Table

        self._Table, self._Spinner = Table, Spinner
        self.console = Console(file=stream or sys.stderr, highlight=False)
        self._running: dict[int, tuple[str, float]] = {}
        self._started: dict[int, float] = {}
        self._live = Live(self._render(), console=self.console, refresh_per_second=8, transient=True)
        self._live.start()

    def _render(self):
        table = self._Table.grid(padding=(0, 1))
        for step, (title, t0) in sorted(self._running.items()):
            table.add_row(self._Spinner("dots"), f"[bold]#{step}[/] {title}", f"{time.monotonic() - t0:.1f}s")
        return table

    def _refresh(self) -> None:
        self._live.update(self._render())

    def start(self, step: int, title: str) -> None:
        self._started[step] = time.monotonic()
        self._running[step] = (title, self._started[step])
        self._refresh()

    def cached(self, step: int) -> None:
        title, _ = self._running.pop(step, ("", 0))
        self.console.print(f"[bold]#{step}[/] {title} [bold cyan]CACHED[/]")
        self._refresh()

    def output(self, step: int, line: str) -> None:
        from rich.markup import escape

        self.console.print(f"[dim]#{step} │[/] {escape(line)}", soft_wrap=True)

    def done(self, step: int) -> None:
        title, _ = self._running.pop(step, ("", 0))
        elapsed = time.monotonic() - self._started.get(step, time.monotonic())
        self.console.print(f"[bold]#{step}[/] {title} [green]DONE {elapsed:.1f}s[/]")
        self._refresh()

    def failed(self, step: int, message: str) -> None:
        title, _ = self._running.pop(step, ("", 0))
        self.console.print(f"[bold]#{step}[/] {title} [bold red]ERROR[/] {message}")
        self._refresh()

    def info(self, message: str) -> None:
        self.console.print(message)

    def close(self) -> None:
        self._live.stop()


def make_progress(mode: str = "auto", stream: TextIO | None = None) -> Progress:
    """auto: rich on a terminal, plain otherwise; plain/tty force one."""
    stream = stream or sys.stderr
    if mode == "tty" or (mode == "auto" and stream.isatty()):
        return RichProgress(stream)
    return PlainProgress(stream)
