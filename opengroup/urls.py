"""Join URLs: what an operator hands out and what Session clients parse."""

from __future__ import annotations


def join_url(public_url: str, room_id: str, public_key_hex: str) -> str:
    """``http://host[:port]/ROOM?public_key=<64 hex>``; clients want the room id lower case."""
    return f"{public_url.rstrip('/')}/{room_id}?public_key={public_key_hex}"


HTTPS_NOTE = (
    "Behind TLS, use https only on port 443: Session desktop drops any other port "
    "for https servers."
)
