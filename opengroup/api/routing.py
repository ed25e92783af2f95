"""One routing table for both ways in: direct HTTP and onion requests.

A transport turns whatever arrived into an :class:`ApiRequest` and hands it
to :meth:`Router.dispatch`, which finds the handler, runs it (a plain function
in a worker thread, since the database calls block; an ``async`` one, the hot
``compact_poll``, on the event loop), and turns the result, or the
:class:`~opengroup.domain.errors.ApiError` it raised, into an
:class:`ApiResponse` whose JSON body always carries ``status_code``. No exception
leaves ``dispatch``: an unexpected one is logged and answered 500 without details.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

import anyio.to_thread
import orjson

from opengroup.api.jsonbody import DEEP_JSON, JsonTooDeep, loads_json
from opengroup.api.paths import PathTable
from opengroup.domain.community import Community
from opengroup.domain.errors import ApiError, BadRequest, RateLimited

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]


def json_headers(headers: Mapping[Any, Any]) -> dict[str, str]:
    """Headers given as a JSON object (inside onion requests and batch items) as
    request headers: names lower-cased, null values left out, and the numbers and
    booleans Android sends (``"Room": 5``, ``true``) as the text they stand for."""
    return {
        str(name).lower(): _header_text(value)
        for name, value in headers.items()
        if value is not None
    }


def _header_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


@dataclass
class ApiRequest:
    """A transport-neutral request. Header names are lower case, values strings."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    # The query as sent, undecoded: what a community API signature covers.
    query_string: str = ""
    path_params: dict[str, str] = field(default_factory=dict)
    max_json_depth: int = 32  # the router sets the server's max_json_depth

    @property
    def room(self) -> str | None:
        return self.headers.get("room") or None

    @property
    def token(self) -> str | None:
        return self.headers.get("authorization") or None

    def json(self) -> JsonObject:
        """The body as a JSON object, or 400 saying why it is not one."""
        if not self.body.strip():
            raise BadRequest("a JSON body is required")
        try:
            value = loads_json(self.body, self.max_json_depth)
        except JsonTooDeep:
            raise BadRequest(DEEP_JSON) from None
        except orjson.JSONDecodeError:
            raise BadRequest("body is not valid JSON") from None
        if not isinstance(value, dict):
            raise BadRequest("body must be a JSON object")
        return value


@dataclass
class ApiResponse:
    status: int
    body: JsonObject
    headers: dict[str, str] = field(default_factory=dict)
    # The matched route's pattern ("/rooms/{room_id}"), "" if none matched: what logs
    # and metrics name a request by (never the raw path, which carries keys and ids).
    route: str = ""

    def encode(self) -> bytes:
        return orjson.dumps(self.body)


class Who(Enum):
    """Who may call a v2 route. The router checks the token before the handler runs and
    hands the handler the :class:`Member`; the domain then applies its own rules (a
    moderator's rights, whose message may be deleted)."""

    ANYONE = "anyone"
    MEMBER = "a token holder of the Room header's room"
    MEMBER_OF_PATH_ROOM = "a token holder of the path's room"
    MEMBER_OF_BODY_ROOM = "a token holder of the body's room_id (else the Room header's)"


# A handler of an ANYONE route takes (community, request); of the others also the
# Member. An ``async`` handler runs on the event loop, a plain one in a worker thread.
SyncHandler = Callable[..., JsonObject]
AsyncHandler = Callable[..., Awaitable[JsonObject]]
Handler = SyncHandler | AsyncHandler


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    who: Who = Who.ANYONE


def error_response(status: int, reason: str, headers: dict[str, str] | None = None) -> ApiResponse:
    """The one error shape: ``{"status_code": N, "error": "short reason"}``."""
    return ApiResponse(status, {"status_code": status, "error": reason}, headers or {})


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self.table = PathTable(routes)
        self._async = {
            route.handler for route in routes if inspect.iscoroutinefunction(route.handler)
        }

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        return self.table.match(method, path)

    def knows(self, method: str, path: str) -> bool:
        return self.table.knows(method, path)

    async def dispatch(self, community: Community, request: ApiRequest) -> ApiResponse:
        """Find and run the handler; the answer names the route that matched (if any)."""
        try:
            route, request.path_params = self.match(request.method, request.path)
        except ApiError as exc:
            return error_response(exc.status, exc.reason)
        request.max_json_depth = community.settings.max_json_depth
        response = await self._run(route, community, request)
        response.route = route.path
        return response

    async def _run(self, route: Route, community: Community, request: ApiRequest) -> ApiResponse:
        try:
            if route.handler in self._async:
                result = await self._call_async(route, community, request)
            else:
                result = await anyio.to_thread.run_sync(self._call, route, community, request)
        except RateLimited as exc:
            retry = max(1, round(exc.retry_after_seconds + 0.5))
            response = error_response(exc.status, exc.reason, {"Retry-After": str(retry)})
            response.body["retry_after"] = retry
            return response
        except ApiError as exc:
            return error_response(exc.status, exc.reason)
        except Exception:
            log.exception("unexpected error in %s %s", request.method, request.path)
            return error_response(500, "internal server error")
        return ApiResponse(200, {"status_code": 200, **result})

    @staticmethod
    def _call(route: Route, community: Community, request: ApiRequest) -> JsonObject:
        """A plain handler, after the token check its route asks for (worker thread)."""
        handler = cast(SyncHandler, route.handler)
        if route.who is Who.ANYONE:
            return handler(community, request)
        member = community.authenticate(_room_of(route.who, request), request.token)
        return handler(community, request, member)

    @staticmethod
    async def _call_async(route: Route, community: Community, request: ApiRequest) -> JsonObject:
        """An ``async`` handler, after its token check (on the event loop)."""
        handler = cast(AsyncHandler, route.handler)
        if route.who is Who.ANYONE:
            return await handler(community, request)
        room_id = _room_of(route.who, request)
        member = await community.authenticate_async(room_id, request.token)
        return await handler(community, request, member)


def _room_of(who: Who, request: ApiRequest) -> str | None:
    """The room whose token the caller must hold."""
    if who is Who.MEMBER_OF_PATH_ROOM:
        return request.path_params["room_id"]
    if who is Who.MEMBER_OF_BODY_ROOM:
        room_id = request.json().get("room_id")
        if room_id is None:
            return request.room
        if not isinstance(room_id, str):
            raise BadRequest("room_id must be a string")
        return room_id
    return request.room
