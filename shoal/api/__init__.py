"""shoal.api (being built)."""
