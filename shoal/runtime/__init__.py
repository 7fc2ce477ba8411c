"""shoal.runtime (being built)."""
