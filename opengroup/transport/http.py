"""The ASGI application: direct HTTP, the onion endpoint and the home page.

Both ways in build an :class:`ApiRequest` and hand it to the one router, which
decides where each handler runs (see :mod:`opengroup.api.routing`).
"""

from __future__ import annotations

import dataclasses
import logging
import time

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from opengroup.api.routing import ApiRequest, ApiResponse, Router, error_response
from opengroup.api.v3.calls import Answer
from opengroup.api.v3.routing import Router as CommunityRouter
from opengroup.domain.community import Community
from opengroup.domain.errors import NotFound
from opengroup.keys import ServerKeys
from opengroup.metrics import Metrics
from opengroup.transport import onion, onion_v4
from opengroup.web.home import render_home, sniff_image_type

log = logging.getLogger("opengroup.requests")

JSON = "application/json"
ONION_ROUTE = "/loki/v3/lsrpc"
ONION_V4_ROUTE = "/oxen/v4/lsrpc"
ONION_V3_ROUTES = (ONION_ROUTE, "/oxen/v3/lsrpc")
LEGACY_PREFIX = "/legacy"
WEB_IMAGE_ROUTE = "/web/rooms/{room_id}/image"


PLAIN = b"text/plain; charset=utf-8"


class BodyTooLarge(Exception):
    pass


async def read_asgi_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """:func:`read_body` for a bare ASGI app."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyTooLarge
    chunks, size = [], 0
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


def _asks_to_close(scope: Scope) -> bool:
    return any(
        name == b"connection" and value.lower() == b"close" for name, value in scope["headers"]
    )


async def _send(send: Send, status: int, body: bytes, content_type: bytes, close: bool) -> None:
    """A whole answer of a bare ASGI app, with ``Connection: close`` in kind (see _closing)."""
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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

    def __init__(
        self,
        community: Community,
        router: Router,
        community_router: CommunityRouter,
        keys: ServerKeys,
    ) -> None:
        self.community = community
        self.router = router
        self.community_router = community_router
        self.settings = community.settings
        self.private_key = keys.private_key
        self.metrics = Metrics(community) if self.settings.metrics_enabled else None

    def _record(
        self, transport: str, method: str, route: str, status: int, started: float, note: str = ""
    ) -> None:
        """The one log line (and metrics) of a request: route pattern, never path or query.

        ``note`` is a fixed reason text of ours (never request data), e.g. why an
        onion envelope was refused.
        """
        seconds = time.perf_counter() - started
        log.info(
            "%s %s %s %d %.1fms%s",
            transport,
            method,
            route or "unmatched",
            status,
            seconds * 1000,
            f" ({note})" if note else "",
        )
        if self.metrics is not None:
            self.metrics.observe(route, method, status, transport, seconds)

    async def _dispatch(self, request: ApiRequest, transport: str) -> ApiResponse:
        started = time.perf_counter()
        response = await self.router.dispatch(self.community, request)
        self._record(transport, request.method, response.route, response.status, started)
        return response

    async def _dispatch_v3(self, request: ApiRequest, transport: str) -> Answer:
        started = time.perf_counter()
        answer, route = await self.community_router.dispatch(self.community, request)
        self._record(transport, request.method, route, answer.status, started)
        return answer

    def _legacy(self, request: ApiRequest) -> ApiRequest | None:
        """The v2 request a path under ``/legacy/`` names (None: not under it)."""
        if request.path == LEGACY_PREFIX or request.path.startswith(LEGACY_PREFIX + "/"):
            return dataclasses.replace(request, path=request.path[len(LEGACY_PREFIX) :] or "/")
        return None

    def _speaks_v2(self, request: ApiRequest) -> bool:
        """A path at the root is the v2 API's where the v3 API has no such route."""
        return not self.community_router.knows(request.method, request.path) and self.router.knows(
            request.method, request.path
        )

    async def direct(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            body = await read_body(request, self.settings.max_request_body_bytes)
        except BodyTooLarge:
            self._record("http", request.method, "", 413, started)
            too_large = ApiRequest(method=request.method, path=request.scope["path"])
            if self._legacy(too_large) is None and not self._speaks_v2(too_large):
                refusal = Answer.text(413, "request body too large")
                return _closing(
                    request, Response(refusal.body, 413, media_type=refusal.content_type)
                )
            answer = error_response(413, "request body too large")
        else:
            query: dict[str, str] = {}
            for name, value in request.query_params.multi_items():
                query.setdefault(name, value)
            api_request = ApiRequest(
                method=request.method,
                path=request.scope["path"],  # decoded; url.path cuts it at a decoded "?"
                query=query,
                query_string=request.url.query,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
            )
            legacy = self._legacy(api_request)
            if legacy is None and not self._speaks_v2(api_request):
                v3 = await self._dispatch_v3(api_request, "http")
                response = Response(v3.body, v3.status, dict(v3.headers), media_type=None)
                if v3.content_type:  # none on a 304 (no body, no Content-Length either)
                    response.headers["content-type"] = v3.content_type
                return _closing(request, response)
            answer = await self._dispatch(legacy or api_request, "http")
        response = Response(answer.encode(), answer.status, answer.headers, media_type=JSON)
        return _closing(request, response)

    async def _open_onion(
        self, scope: Scope, receive: Receive, send: Send, transport: str, route: str, started: float
    ) -> onion.OpenedEnvelope | None:
        """The envelope of an onion request, or None once a plain HTTP refusal is sent
        (413 over ``max_onion_body_bytes``, 400 if it cannot be opened: there is no key
        to seal an answer with)."""
        close = _asks_to_close(scope)
        try:
            body = await read_asgi_body(scope, receive, self.settings.max_onion_body_bytes)
            return onion.open_envelope(body, self.private_key)
        except BodyTooLarge:
            self._record(transport, "POST", route, 413, started, "body too large")
            await _send(send, 413, b"onion request too large", PLAIN, close)
        except onion.EnvelopeError as exc:
            self._record(transport, "POST", route, 400, started, f"bad envelope: {exc}")
            if self.metrics is not None:
                self.metrics.onion_failures.inc()
            await _send(send, 400, f"bad onion request: {exc}".encode(), PLAIN, close)
        return None

    async def onion(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /loki/v3/lsrpc``, as a bare ASGI app: every poll of every client comes
        this way, and Starlette's request and routing machinery would cost more here
        than the rest of a poll."""
        started = time.perf_counter()
        close = _asks_to_close(scope)
        envelope = await self._open_onion(scope, receive, send, "onion", ONION_ROUTE, started)
        if envelope is None:
            return
        try:
            api_request, v3_api = onion.parse_inner_request(
                envelope.plaintext, self.settings.max_json_depth
            )
        except onion.InnerRequestError as exc:
            answer = error_response(400, str(exc))
            self._record("onion", "POST", ONION_ROUTE, 400, started, "bad inner request")
        else:
            legacy = self._legacy(api_request) if v3_api else None
            if v3_api and legacy is None:
                v3 = await self._dispatch_v3(api_request, "onion")
                # The v3 API through a v3 envelope: the body of a success, else its status.
                plain = v3.body if 200 <= v3.status < 300 else b'{"status_code":%d}' % v3.status
                await _send(send, 200, onion.seal_response(envelope, plain), PLAIN, close)
                return
            answer = await self._dispatch(legacy or api_request, "onion")
        sealed = onion.seal_response(envelope, answer.encode())
        await _send(send, 200, sealed, PLAIN, close)

    async def onion_v4(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /oxen/v4/lsrpc``: what every current client sends. The v3 API, or the
        v2 API for an endpoint under ``/legacy/``; the answer is bencoded, sealed, raw."""
        started = time.perf_counter()
        close = _asks_to_close(scope)
        envelope = await self._open_onion(scope, receive, send, "onion4", ONION_V4_ROUTE, started)
        if envelope is None:
            return
        try:
            api_request = onion_v4.parse_request(envelope.plaintext, self.settings.max_json_depth)
        except onion.InnerRequestError as exc:
            self._record("onion4", "POST", ONION_V4_ROUTE, 400, started, "bad inner request")
            plain = onion_v4.encode_response(
                400, PLAIN.decode(), {}, f"Invalid v4 onion request: {exc}".encode()
            )
        else:
            legacy = self._legacy(api_request)
            if legacy is not None:
                v2 = await self._dispatch(legacy, "onion4")
                plain = onion_v4.encode_response(v2.status, JSON, dict(v2.headers), v2.encode())
            else:
                v3 = await self._dispatch_v3(api_request, "onion4")
                plain = onion_v4.encode_response(
                    v3.status, v3.content_type, dict(v3.headers), v3.body
                )
        await _send(send, 200, envelope.seal(plain), b"application/octet-stream", close)

    async def home(self, request: Request) -> Response:
        started = time.perf_counter()
        html = await anyio.to_thread.run_sync(render_home, self.community)
        self._record("http", "GET", "/", 200, started)
        return _closing(request, HTMLResponse(html))

    async def room_image(self, request: Request) -> Response:
        """The home page's room images: raw bytes, sniffed type; 404 if none."""
        started = time.perf_counter()
        try:
            data = await anyio.to_thread.run_sync(
                self.community.room_image, request.path_params["room_id"]
            )
        except NotFound:
            self._record("http", "GET", WEB_IMAGE_ROUTE, 404, started)
            return _closing(request, PlainTextResponse("no image", 404))
        self._record("http", "GET", WEB_IMAGE_ROUTE, 200, started)
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=300"}
        return _closing(request, Response(data, 200, headers, media_type=sniff_image_type(data)))

    async def metrics_page(self, request: Request) -> Response:
        """Prometheus scrape, for metrics_allow_from addresses only."""
        started = time.perf_counter()
        assert self.metrics is not None
        client = request.client.host if request.client else None
        if not self.metrics.allowed(client):
            self._record("http", "GET", "/metrics", 403, started)
            return _closing(request, PlainTextResponse("metrics are not served to you", 403))
        body, content_type = await anyio.to_thread.run_sync(self.metrics.exposition)
        self._record("http", "GET", "/metrics", 200, started)
        return _closing(request, Response(body, 200, media_type=content_type))

    async def method_not_allowed(self, request: Request) -> Response:
        """The onion endpoint or the home page asked with another method: JSON 405."""
        started = time.perf_counter()
        answer = error_response(405, f"{request.method} is not allowed on {request.url.path}")
        path = request.url.path
        route = path if path in (*ONION_V3_ROUTES, ONION_V4_ROUTE) else "/"
        self._record("http", request.method, route, 405, started)
        return _closing(request, Response(answer.encode(), 405, media_type=JSON))

    async def starlette_refusal(self, request: Request, exc: Exception) -> Response:
        """Starlette's own refusals (e.g. 405 for a method no route lists, like TRACE): the
        one JSON error shape too, so every direct answer carries its status_code."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        answer = error_response(status, f"{request.method} {request.url.path}: refused")
        headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
        return _closing(request, Response(answer.encode(), status, headers, media_type=JSON))


class OnionFirst:
    """Hands ``POST /loki/v3/lsrpc`` straight to :meth:`Transports.onion`; the rest to
    the Starlette app (which also answers other methods there with a 405)."""

    def __init__(self, transports: Transports, app: ASGIApp) -> None:
        self.transports = transports
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            if scope["path"] in ONION_V3_ROUTES:
                await self.transports.onion(scope, receive, send)
                return
            if scope["path"] == ONION_V4_ROUTE:
                await self.transports.onion_v4(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_asgi_app(
    community: Community,
    router: Router,
    community_router: CommunityRouter,
    keys: ServerKeys,
    **starlette_options: object,
) -> ASGIApp:
    t = Transports(community, router, community_router, keys)
    methods = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"]
    not_post = [m for m in methods if m != "POST"]
    routes = [
        *(Route(path, t.method_not_allowed, methods=not_post) for path in ONION_V3_ROUTES),
        Route(ONION_V4_ROUTE, t.method_not_allowed, methods=not_post),
        Route("/", t.home, methods=["GET"]),
        Route("/", t.method_not_allowed, methods=[m for m in methods if m != "GET"]),
        Route(WEB_IMAGE_ROUTE, t.room_image, methods=["GET"]),
    ]
    if t.metrics is not None:
        routes.append(Route("/metrics", t.metrics_page, methods=["GET"]))
    routes.append(Route("/{path:path}", t.direct, methods=methods))
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: t.starlette_refusal},
        **starlette_options,  # type: ignore[arg-type]
    )
    return OnionFirst(t, app)
