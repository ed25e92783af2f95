"""The web page's endpoints: ``GET /`` (:func:`~opengroup.web.home.render_home`) and
the room images it shows, ``GET /web/rooms/{room_id}/image``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from opengroup.api.errors import unexpected
from opengroup.domain.community import Community
from opengroup.domain.errors import NoSuchThing
from opengroup.transport.asgi import closing
from opengroup.transport.observe import RequestLog
from opengroup.web.home import render_home, sniff_image_type

HOME_ROUTE = "/"
ROOM_IMAGE_ROUTE = "/web/rooms/{room_id}/image"


class WebPages:
    def __init__(self, community: Community, requests: RequestLog) -> None:
        self.community = community
        self.requests = requests

    async def home(self, request: Request) -> Response:
        return await self._page(request, HOME_ROUTE, self._home)

    async def room_image(self, request: Request) -> Response:
        """Raw bytes, of the sniffed type; 404 if the room has no image."""
        return await self._page(
            request, ROOM_IMAGE_ROUTE, lambda: self._room_image(request.path_params["room_id"])
        )

    async def _page(
        self, request: Request, route: str, answer: Callable[[], Awaitable[Response]]
    ) -> Response:
        """``answer``'s response, recorded; an unexpected failure (a lost database
        connection: 503) answered as the APIs answer it, in plain text."""
        started = time.perf_counter()
        try:
            response = await answer()
        except Exception as exc:
            status, reason = unexpected(exc, f"GET {route}")
            response = PlainTextResponse(reason, status)
        self.requests.record("http", "GET", route, response.status_code, started)
        return closing(request, response)

    async def _home(self) -> Response:
        return HTMLResponse(await self.community.threads.run(render_home, self.community))

    async def _room_image(self, room_id: str) -> Response:
        try:
            data = await self.community.threads.run(self.community.files.public_room_image, room_id)
        except NoSuchThing:
            return PlainTextResponse("no image", 404)
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=300"}
        return Response(data, 200, headers, media_type=sniff_image_type(data))
