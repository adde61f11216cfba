"""Background workers of the Harbor service (separate processes)."""
