"""shoal.store (being built)."""
