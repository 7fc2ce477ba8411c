"""shoal.network (being built)."""
