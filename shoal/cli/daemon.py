"""CLI commands: daemon (not built yet)."""

COMMANDS: list = []
