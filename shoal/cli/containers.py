"""CLI commands: containers (not built yet)."""

COMMANDS: list = []
