"""The API: one routing table and the handlers behind it, shared by both transports."""
