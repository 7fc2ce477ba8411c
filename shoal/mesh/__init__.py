"""shoal.mesh (being built)."""
