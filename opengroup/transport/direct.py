"""Direct HTTP: the catch-all endpoint of both APIs (the community API at the root, the
v2 API under ``/legacy/`` and at the root where the community API has no such path),
and the JSON refusals of the paths other endpoints own (a 405 on ``/`` or an onion
path, Starlette's own refusals)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from opengroup.api.errors import error_response
from opengroup.api.exchange import ApiRequest
from opengroup.api.v3.calls import Answer
from opengroup.transport.asgi import JSON, BodyTooLarge, closing, read_body
from opengroup.transport.dispatch import Dispatcher
from opengroup.transport.observe import RequestLog

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectHttp:
    def __init__(self, dispatcher: Dispatcher, requests: RequestLog, max_body_bytes: int) -> None:
        self.dispatcher = dispatcher
        self.requests = requests
        self.max_body_bytes = max_body_bytes

    async def endpoint(self, request: Request) -> Response:
        """Any path no other endpoint owns, with any method."""
        started = time.perf_counter()
        dispatcher = self.dispatcher
        try:
            body = await read_body(request.scope, request.receive, self.max_body_bytes)
        except BodyTooLarge:
            self.requests.record("http", request.method, "", 413, started)
            too_large = ApiRequest(method=request.method, path=request.scope["path"])
            if dispatcher.legacy(too_large) is None and not dispatcher.speaks_v2(too_large):
                refusal = Answer.text(413, "request body too large")
                return closing(
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
            legacy = dispatcher.legacy(api_request)
            if legacy is None and not dispatcher.speaks_v2(api_request):
                v3 = await dispatcher.v3(api_request, "http")
                response = Response(v3.body, v3.status, dict(v3.headers), media_type=None)
                if v3.content_type:  # none on a 304 (no body, no Content-Length either)
                    response.headers["content-type"] = v3.content_type
                return closing(request, response)
            answer = await dispatcher.v2(legacy or api_request, "http")
        response = Response(answer.encode(), answer.status, answer.headers, media_type=JSON)
        return closing(request, response)

    def method_not_allowed(self, route: str) -> Endpoint:
        """The endpoint answering the other methods on ``route`` (the home page, an
        onion path) with the JSON 405."""

        async def refuse(request: Request) -> Response:
            started = time.perf_counter()
            answer = error_response(405, f"{request.method} is not allowed on {request.url.path}")
            self.requests.record("http", request.method, route, 405, started)
            return closing(request, Response(answer.encode(), 405, media_type=JSON))

        return refuse

    async def starlette_refusal(self, request: Request, exc: Exception) -> Response:
        """Starlette's own refusals (e.g. 405 for a method no route lists, like TRACE): the
        one JSON error shape too, so every direct answer carries its status_code."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        answer = error_response(status, f"{request.method} {request.url.path}: refused")
        headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
        return closing(request, Response(answer.encode(), status, headers, media_type=JSON))
