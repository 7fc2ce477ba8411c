"""What every command needs from the global options: the Settings."""

from __future__ import annotations

import click

from shoal.config import Settings


def settings_from(ctx: click.Context, **overrides: object) -> Settings:
    """Settings for this invocation: --state-dir (or SHOAL_STATE_DIR), env, overrides."""
    root = ctx.find_root()
    state_dir = (root.obj or {}).get("state_dir")
    try:
        return Settings.from_env(state_dir=state_dir, **overrides)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
