"""What every endpoint of the ASGI app shares: one body reader with a size limit, and
``Connection: close`` answered in kind (Node's client reuses a closed socket otherwise)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

JSON = "application/json"
PLAIN = b"text/plain; charset=utf-8"


class BodyTooLarge(Exception):
    """The request body is over the limit (by its Content-Length, or as it arrives)."""


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refusing (before reading it all) anything over ``limit`` bytes."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def asks_to_close(scope: Scope) -> bool:
    return any(
        name == b"connection" and value.lower() == b"close" for name, value in scope["headers"]
    )


async def send_whole(
    send: Send, status: int, body: bytes, content_type: bytes, close: bool
) -> None:
    """A whole answer of a bare ASGI endpoint, with ``Connection: close`` in kind."""
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def closing(request: Request, response: Response) -> Response:
    """A Starlette endpoint's answer, with ``Connection: close`` in kind."""
    if asks_to_close(request.scope):
        response.headers["connection"] = "close"
    return response
