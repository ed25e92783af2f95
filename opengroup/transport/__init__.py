"""Transports: direct HTTP and onion requests, both into the one router."""
