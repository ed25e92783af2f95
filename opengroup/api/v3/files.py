"""Files: an upload into a room (raw bytes), and its download.

The uploader may name the file with ``Content-Disposition: attachment;
filename*=UTF-8''<percent-encoded>`` (RFC 5987, what pysogs documents) or
``filename="..."``; the download gives the name back in the RFC 5987 form.
"""

from __future__ import annotations

import re
from email.utils import formatdate
from urllib.parse import quote, unquote_to_bytes

from opengroup.api.v3.calls import Answer, Call
from opengroup.storage.queries import StoredFile

# RFC 5987 attr-char beyond letters, digits and "-._~" (which quote() keeps anyway).
_ATTR_CHARS = "!#$&+^`|"

# One parameter of a Content-Disposition value: name, then a quoted string or a token.
_PARAM_RE = re.compile(r';\s*([A-Za-z0-9_.*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')


def upload(call: Call) -> Answer:
    """201 ``{"id": N}``. The request's Content-Type is ignored (desktop sends
    application/octet-stream)."""
    filename = filename_of(call.request.headers.get("content-disposition"))
    file_id = call.community.uploads.upload(call.in_room, call.signer, call.request.body, filename)
    return Answer.json({"id": file_id}, 201)


def download(call: Call) -> Answer:
    """The bytes; ``/file/{id}/{anything}`` is the same file (the name is ignored)."""
    found = call.community.uploads.download(call.in_room, call.int_param("file_id"))
    return Answer.binary(found.data, download_headers(found))


def download_headers(found: StoredFile) -> dict[str, str]:
    """``content-disposition`` (with the name when known), ``last-modified`` (the upload
    time) and ``expires`` (none for a file that never expires, a room image)."""
    disposition = "attachment"
    if found.filename:
        encoded = quote(found.filename.encode("utf-8"), safe=_ATTR_CHARS)
        disposition += f"; filename*=UTF-8''{encoded}"
    headers = {
        "content-disposition": disposition,
        "last-modified": formatdate(found.created_at, usegmt=True),
    }
    if found.expires_at is not None:
        headers["expires"] = formatdate(found.expires_at, usegmt=True)
    return headers


def filename_of(disposition: str | None) -> str | None:
    """The file name a Content-Disposition value gives: ``filename*`` (RFC 5987) wins
    over ``filename``; None if there is neither (or the value is not understood)."""
    if not disposition:
        return None
    params: dict[str, str] = {}
    for found in _PARAM_RE.finditer(disposition):
        quoted, token = found[2], found[3]
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else token.strip()
        params.setdefault(found[1].lower(), value)
    if "filename*" in params:
        extended = _extended_value(params["filename*"])
        if extended is not None:
            return extended
    plain = params.get("filename")
    return _as_utf8(plain) if plain else None


def _extended_value(value: str) -> str | None:
    """``charset'language'percent-encoded`` decoded (UTF-8 or ISO-8859-1); None if it is
    not of that form."""
    charset, quote1, rest = value.partition("'")
    _language, quote2, encoded = rest.partition("'")
    if not quote1 or not quote2:
        return None
    raw = unquote_to_bytes(encoded)
    if charset.strip().lower() == "iso-8859-1":
        return raw.decode("latin-1")
    return raw.decode("utf-8", errors="replace")


def _as_utf8(value: str) -> str:
    """A plain ``filename`` sent as raw UTF-8 reaches us as ISO-8859-1 text over direct
    HTTP (header bytes are read as Latin-1): read such bytes as the UTF-8 they are."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value
