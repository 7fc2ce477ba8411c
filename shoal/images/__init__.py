"""shoal.images (being built)."""
