"""The image types a room's image may be: those every browser and Session app shows."""

from __future__ import annotations

# Magic numbers of the image types a browser shows (never SVG: it may carry script).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)

IMAGE_TYPES = "PNG, JPEG, GIF or WebP"


def image_type(data: bytes) -> str | None:
    """The content type of an image from its first bytes; None if it is none of ours."""
    for magic, content_type in _SIGNATURES:
        if data.startswith(magic):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
