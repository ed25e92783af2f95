"""Command-line interfaces: ``opengroup`` and the drop-in ``session-open-group-server``."""
