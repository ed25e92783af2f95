"""The ASGI application: direct HTTP, the onion endpoint and the home page.

Both ways in build an :class:`ApiRequest` and hand it to the one router. The
router and the database are synchronous, so dispatch runs in a worker thread
and the event loop stays free to read and write sockets.
"""

from __future__ import annotations

import logging
import time

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from opengroup.api.routing import ApiRequest, ApiResponse, Router, error_response
from opengroup.domain.community import Community
from opengroup.transport import onion
from opengroup.web.home import render_home

log = logging.getLogger("opengroup.requests")

JSON = "application/json"


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (before reading it all) anything over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _closing(request: Request, response: Response) -> Response:
    """Answer ``Connection: close`` in kind (Node's client reuses a closed socket otherwise)."""
    if request.headers.get("connection", "").lower() == "close":
        response.headers["connection"] = "close"
    return response


class Transports:
    """The request handlers of the ASGI app, bound to one community and router."""

    def __init__(self, community: Community, router: Router) -> None:
        self.community = community
        self.router = router
        self.settings = community.settings
        keys = community.keys
        assert keys is not None, "serving needs the server's key pair"
        self.private_key = keys.private_key

    async def _dispatch(self, request: ApiRequest, transport: str) -> ApiResponse:
        started = time.perf_counter()
        response = await run_in_threadpool(self.router.dispatch, self.community, request)
        log.info(
            "%s %s %s %d %.1fms",
            transport,
            request.method,
            request.path,
            response.status,
            (time.perf_counter() - started) * 1000,
        )
        return response

    async def direct(self, request: Request) -> Response:
        try:
            body = await read_body(request, self.settings.max_request_body_bytes)
        except BodyTooLarge:
            answer = error_response(413, "request body too large")
        else:
            query: dict[str, str] = {}
            for name, value in request.query_params.multi_items():
                query.setdefault(name, value)
            api_request = ApiRequest(
                method=request.method,
                path=request.url.path,
                query=query,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
            )
            answer = await self._dispatch(api_request, "http")
        response = Response(answer.encode(), answer.status, answer.headers, media_type=JSON)
        return _closing(request, response)

    async def onion(self, request: Request) -> Response:
        try:
            body = await read_body(request, self.settings.max_onion_body_bytes)
            envelope = onion.open_envelope(body, self.private_key)
        except BodyTooLarge:
            log.info("onion request refused: body too large")
            return _closing(request, PlainTextResponse("onion request too large", 413))
        except onion.EnvelopeError as exc:
            log.info("onion request refused: %s", exc)
            return _closing(request, PlainTextResponse(f"bad onion request: {exc}", 400))
        try:
            api_request = onion.parse_inner_request(envelope.plaintext)
        except onion.InnerRequestError as exc:
            answer = error_response(400, str(exc))
        else:
            answer = await self._dispatch(api_request, "onion")
        sealed = onion.seal_response(envelope.key, answer.encode())
        return _closing(request, Response(sealed, 200, media_type="text/plain"))

    async def home(self, request: Request) -> Response:
        html = await run_in_threadpool(render_home, self.community)
        return _closing(request, HTMLResponse(html))

    async def method_not_allowed(self, request: Request) -> Response:
        """The onion endpoint or the home page asked with another method: JSON 405."""
        answer = error_response(405, f"{request.method} is not allowed on {request.url.path}")
        return _closing(request, Response(answer.encode(), 405, media_type=JSON))


def create_asgi_app(community: Community, router: Router, **starlette_options: object) -> Starlette:
    t = Transports(community, router)
    methods = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"]
    routes = [
        Route("/loki/v3/lsrpc", t.onion, methods=["POST"]),
        Route("/loki/v3/lsrpc", t.method_not_allowed, methods=[m for m in methods if m != "POST"]),
        Route("/", t.home, methods=["GET"]),
        Route("/", t.method_not_allowed, methods=[m for m in methods if m != "GET"]),
        Route("/{path:path}", t.direct, methods=methods),
    ]
    return Starlette(routes=routes, **starlette_options)  # type: ignore[arg-type]
