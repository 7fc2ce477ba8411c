"""CLI commands: images (not built yet)."""

COMMANDS: list = []
