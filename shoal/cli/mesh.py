"""CLI commands: mesh (not built yet)."""

COMMANDS: list = []
