#!/usr/bin/env python3
"""Write docs/cli.md from the click commands themselves, so the doc never drifts.

    .venv/bin/python scripts/gen-cli-doc.py
"""

from __future__ import annotations

from pathlib import Path

import click

from shoal.cli.main import cli

INTRO = """# shoal command line

Generated from the commands' own help by `scripts/gen-cli-doc.py`; run it again after
changing a command.

Every command takes the global `--state-dir DIR` (or `SHOAL_STATE_DIR`, default
`/var/lib/shoal`). Commands that talk to the API use `<state-dir>/kubeconfig`, written
by `shoal up`; the same file works with `kubectl --kubeconfig`. Container and image
commands (`run`, `ps`, `image ...`, `build`) work without the daemon, like podman.
"""


def walk(command: click.Command, path: list[str], out: list[str]) -> None:
    ctx = click.Context(command, info_name=" ".join(path))
    if path[1:]:
        out.append(f"\n## `{' '.join(path)}`\n")
        out.append("```")
        out.append(command.get_help(ctx).replace("Usage: ", "Usage: ", 1))
        out.append("```")
    if isinstance(command, click.Group):
        for name in sorted(command.list_commands(ctx)):
            walk(command.get_command(ctx, name), [*path, name], out)


def main() -> None:
    out = [INTRO]
    walk(cli, ["shoal"], out)
    target = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
    target.write_text("\n".join(out) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
