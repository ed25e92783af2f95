"""The human-facing page at ``GET /``."""
