"""The web page's endpoints: ``GET /`` (:func:`~opengroup.web.home.render_home`) and
the room images it shows, ``GET /web/rooms/{room_id}/image``."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

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
        started = time.perf_counter()
        html = await self.community.threads.run(render_home, self.community)
        self.requests.record("http", "GET", HOME_ROUTE, 200, started)
        return closing(request, HTMLResponse(html))

    async def room_image(self, request: Request) -> Response:
        """Raw bytes, of the sniffed type; 404 if the room has no image."""
        started = time.perf_counter()
        try:
            data = await self.community.threads.run(
                self.community.files.public_room_image, request.path_params["room_id"]
            )
        except NoSuchThing:
            self.requests.record("http", "GET", ROOM_IMAGE_ROUTE, 404, started)
            return closing(request, PlainTextResponse("no image", 404))
        self.requests.record("http", "GET", ROOM_IMAGE_ROUTE, 200, started)
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=300"}
        return closing(request, Response(data, 200, headers, media_type=sniff_image_type(data)))
