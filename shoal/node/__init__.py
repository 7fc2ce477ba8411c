"""shoal.node (being built)."""
