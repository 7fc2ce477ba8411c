"""CLI commands: resources (not built yet)."""

COMMANDS: list = []
