"""The composition root: settings in, the ASGI app out.

``startup.prepare`` does the once-per-start work (data dir, key pair,
migrations). ``create_app`` builds the ASGI app of one worker on it, and
:func:`create_asgi_app` assembles it, the one place that says which endpoint
answers which path; ``app_factory`` is what uvicorn calls in each worker
process, reading the settings the parent put into ``OPENGROUP_*`` variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from opengroup.api.routes import router
from opengroup.api.v3.routes import router as community_router
from opengroup.config import Settings, load_settings
from opengroup.domain.community import Community
from opengroup.keys import ServerKeys
from opengroup.metrics import METRICS_ROUTE, Metrics, MetricsPage
from opengroup.startup import prepare
from opengroup.storage.database import SQLITE_CHECKPOINT_SECONDS
from opengroup.transport.direct import DirectHttp
from opengroup.transport.dispatch import Dispatcher
from opengroup.transport.observe import RequestLog
from opengroup.transport.onion_endpoints import ONION_V3_ROUTES, ONION_V4_ROUTE, OnionEndpoints
from opengroup.web.routes import HOME_ROUTE, ROOM_IMAGE_ROUTE, WebPages

log = logging.getLogger(__name__)


async def _prune_forever(community: Community, interval: float) -> None:
    while True:
        try:
            counts = await community.threads.run(community.prune)
            counts["request_nonces"] = await community.prune_nonces()
            if any(counts.values()):
                log.info("pruned expired %s", ", ".join(f"{v} {k}" for k, v in counts.items()))
        except Exception:
            log.exception("pruning failed; will retry")
        await asyncio.sleep(interval)


async def _apply_scheduled_forever(community: Community, interval: float) -> None:
    """Apply the permission changes moderators scheduled, and drop the bans that ran
    out, soon after their time (the prune loop's interval is far longer)."""
    while True:
        await asyncio.sleep(interval)
        try:
            counts = await community.threads.run(community.staff.apply_due)
            if any(counts.values()):
                log.info("applied %s", ", ".join(f"{v} {k}" for k, v in counts.items()))
        except Exception:
            log.exception("applying scheduled permission changes failed; will retry")


async def _upkeep_forever(
    community: Community, interval: float, upkeep: Callable[[], None], what: str
) -> None:
    """SQLite's upkeep now and then, in a request thread: the WAL's checkpoint (see
    Database.checkpoint), the planner's statistics (Database.analyze)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await community.threads.run(upkeep)
        except Exception:
            log.exception("%s failed; will retry", what)


def create_app(settings: Settings) -> ASGIApp:
    prepared = prepare(settings, serving=True)
    community = prepared.community()
    community.users.link_named_people()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Everything made so far (modules, the app, compiled statements) lives as long
        # as the process: out of the collector's sight, a full collection no longer
        # walks it, which took milliseconds out of the requests it fell on.
        gc.collect()
        gc.freeze()
        interval = max(settings.prune_interval_seconds, 1)
        tasks = [asyncio.create_task(_prune_forever(community, interval))]
        scheduled = max(settings.future_permissions_interval_seconds, 1)
        tasks.append(asyncio.create_task(_apply_scheduled_forever(community, scheduled)))
        db = prepared.db
        if db.is_sqlite:
            upkeep = [(SQLITE_CHECKPOINT_SECONDS, db.checkpoint, "WAL checkpoint")]
            if settings.statistics_interval_seconds > 0:
                statistics = settings.statistics_interval_seconds
                upkeep.append((statistics, db.analyze, "refreshing the planner's statistics"))
            for every, work, what in upkeep:
                kept_up = _upkeep_forever(community, every, work, what)
                tasks.append(asyncio.create_task(kept_up))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await community.close()
            prepared.db.dispose()

    assert prepared.keys is not None  # prepare() loads them unless told not to
    return create_asgi_app(community, prepared.keys, lifespan)


class OnionFirst:
    """Hands ``POST`` on the onion paths straight to their bare ASGI endpoints; the rest
    to the Starlette app (which also answers other methods there with a 405)."""

    def __init__(self, onion: OnionEndpoints, app: ASGIApp) -> None:
        self.onion = onion
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            if scope["path"] in ONION_V3_ROUTES:
                await self.onion.v3(scope, receive, send)
                return
            if scope["path"] == ONION_V4_ROUTE:
                await self.onion.v4(scope, receive, send)
                return
        await self.app(scope, receive, send)


Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def create_asgi_app(
    community: Community, keys: ServerKeys, lifespan: Lifespan | None = None
) -> ASGIApp:
    """The ASGI app: every path and the endpoint that answers it."""
    settings = community.settings
    metrics = Metrics(community) if settings.metrics_enabled else None
    requests = RequestLog(metrics)
    dispatcher = Dispatcher(community, router, community_router, requests)
    direct = DirectHttp(dispatcher, requests, settings.max_request_body_bytes)
    onion = OnionEndpoints(
        dispatcher,
        requests,
        keys.private_key,
        settings.max_onion_body_bytes,
        settings.max_json_depth,
    )
    web = WebPages(community, requests)
    methods = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"]
    not_post = [m for m in methods if m != "POST"]
    routes = [
        *(
            Route(path, direct.method_not_allowed(path), methods=not_post)
            for path in (*ONION_V3_ROUTES, ONION_V4_ROUTE)
        ),
        Route(HOME_ROUTE, web.home, methods=["GET"]),
        Route(
            HOME_ROUTE,
            direct.method_not_allowed(HOME_ROUTE),
            methods=[m for m in methods if m != "GET"],
        ),
        Route(ROOM_IMAGE_ROUTE, web.room_image, methods=["GET"]),
    ]
    if metrics is not None:
        routes.append(Route(METRICS_ROUTE, MetricsPage(metrics, requests).scrape, methods=["GET"]))
    routes.append(Route("/{path:path}", direct.endpoint, methods=methods))
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: direct.starlette_refusal},
        lifespan=lifespan,
    )
    return OnionFirst(onion, app)


def app_factory() -> ASGIApp:
    """Entry point for uvicorn workers: settings come from the environment."""
    return create_app(load_settings())
