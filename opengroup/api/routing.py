"""The v2 API's router: one routing table for both ways in, direct HTTP and onion.

A transport turns whatever arrived into an :class:`ApiRequest` and hands it
to :meth:`Router.dispatch`, which finds the handler and runs it (a plain
function in a worker thread, since the database calls block; an ``async`` one,
the hot ``compact_poll``, on the event loop) with a :class:`RoutedRequest`: the
request, untouched, beside what its route adds (the path's parameters, the
body's depth limit). The result, or the
:class:`~opengroup.domain.errors.Refusal` raised, becomes an
:class:`ApiResponse` whose JSON body always carries ``status_code``. No exception
leaves ``dispatch``: an unexpected one is logged and answered 500 without details.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import cast

from opengroup.api.errors import error_response, unexpected, v2_refusal
from opengroup.api.exchange import ApiRequest, ApiResponse, JsonObject
from opengroup.api.jsonbody import parse_json
from opengroup.api.paths import PathTable
from opengroup.domain.community import Community
from opengroup.domain.errors import InvalidInput, Refusal


@dataclass(frozen=True)
class RoutedRequest:
    """What a v2 handler is given: the request as it came, the parameters its route's
    path named, and how deep its JSON body may nest."""

    request: ApiRequest
    path_params: Mapping[str, str]
    max_json_depth: int

    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query

    @property
    def room(self) -> str | None:
        return self.request.headers.get("room") or None

    @property
    def token(self) -> str | None:
        return self.request.headers.get("authorization") or None

    def json(self) -> JsonObject:
        """The body as a JSON object, or 400 saying why it is not one."""
        if not self.request.body.strip():
            raise InvalidInput("a JSON body is required")
        value = parse_json(self.request.body, self.max_json_depth)
        if not isinstance(value, dict):
            raise InvalidInput("body must be a JSON object")
        return value


class Who(Enum):
    """Who may call a v2 route. The router checks the token before the handler runs and
    hands the handler the :class:`Member`; the domain then applies its own rules (a
    moderator's rights, whose message may be deleted)."""

    ANYONE = "anyone"
    MEMBER = "a token holder of the Room header's room"
    MEMBER_OF_PATH_ROOM = "a token holder of the path's room"
    MEMBER_OF_BODY_ROOM = "a token holder of the body's room_id (else the Room header's)"


# A handler of an ANYONE route takes (community, routed request); of the others also the
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
            route, params = self.match(request.method, request.path)
        except Refusal as exc:
            return v2_refusal(exc)
        routed = RoutedRequest(request, params, community.settings.max_json_depth)
        response = await self._run(route, community, routed)
        response.route = route.path
        return response

    async def _run(self, route: Route, community: Community, req: RoutedRequest) -> ApiResponse:
        try:
            if route.handler in self._async:
                result = await self._call_async(route, community, req)
            else:
                result = await community.threads.run(self._call, route, community, req)
        except Refusal as exc:
            return v2_refusal(exc)
        except Exception as exc:
            return error_response(*unexpected(exc, f"{req.request.method} {req.request.path}"))
        return ApiResponse(200, {"status_code": 200, **result})

    @staticmethod
    def _call(route: Route, community: Community, req: RoutedRequest) -> JsonObject:
        """A plain handler, after the token check its route asks for (worker thread)."""
        handler = cast(SyncHandler, route.handler)
        if route.who is Who.ANYONE:
            return handler(community, req)
        member = community.membership.authenticate(_room_of(route.who, req), req.token)
        return handler(community, req, member)

    @staticmethod
    async def _call_async(route: Route, community: Community, req: RoutedRequest) -> JsonObject:
        """An ``async`` handler, after its token check (on the event loop)."""
        handler = cast(AsyncHandler, route.handler)
        if route.who is Who.ANYONE:
            return await handler(community, req)
        member = await community.membership.authenticate_async(_room_of(route.who, req), req.token)
        return await handler(community, req, member)


def _room_of(who: Who, req: RoutedRequest) -> str | None:
    """The room whose token the caller must hold."""
    if who is Who.MEMBER_OF_PATH_ROOM:
        return req.path_params["room_id"]
    if who is Who.MEMBER_OF_BODY_ROOM:
        room_id = req.json().get("room_id")
        if room_id is None:
            return req.room
        if not isinstance(room_id, str):
            raise InvalidInput("room_id must be a string")
        return room_id
    return req.room
