"""shoal.controllers (being built)."""
