"""Which API a request is for, whichever way it came in, and its answer from that
API's router (logged and counted).

The community API lives at the root; the v2 API under ``/legacy/``, and also at
the root for the paths the community API has no route for (2021 clients call
``/rooms``, ``/messages`` ... there).
"""

from __future__ import annotations

import dataclasses
import time

from opengroup.api.exchange import ApiRequest, ApiResponse
from opengroup.api.routing import Router
from opengroup.api.v3.calls import Answer
from opengroup.api.v3.routing import Router as CommunityRouter
from opengroup.domain.community import Community
from opengroup.transport.observe import RequestLog

LEGACY_PREFIX = "/legacy"


class Dispatcher:
    """The two routers, bound to one community, as the endpoints reach them."""

    def __init__(
        self,
        community: Community,
        router: Router,
        community_router: CommunityRouter,
        requests: RequestLog,
    ) -> None:
        self.community = community
        self.router = router
        self.community_router = community_router
        self.requests = requests

    async def v2(self, request: ApiRequest, transport: str) -> ApiResponse:
        started = time.perf_counter()
        response = await self.router.dispatch(self.community, request)
        self.requests.record(transport, request.method, response.route, response.status, started)
        return response

    async def v3(self, request: ApiRequest, transport: str) -> Answer:
        started = time.perf_counter()
        answer, route = await self.community_router.dispatch(self.community, request)
        self.requests.record(transport, request.method, route, answer.status, started)
        return answer

    @staticmethod
    def legacy(request: ApiRequest) -> ApiRequest | None:
        """The v2 request a path under ``/legacy/`` names (None: not under it)."""
        if request.path == LEGACY_PREFIX or request.path.startswith(LEGACY_PREFIX + "/"):
            return dataclasses.replace(request, path=request.path[len(LEGACY_PREFIX) :] or "/")
        return None

    def speaks_v2(self, request: ApiRequest) -> bool:
        """A path at the root is the v2 API's where the v3 API has no such route."""
        return not self.community_router.knows(request.method, request.path) and self.router.knows(
            request.method, request.path
        )
