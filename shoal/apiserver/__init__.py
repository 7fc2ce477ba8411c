"""shoal.apiserver (being built)."""
