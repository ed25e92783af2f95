"""The community API's router: match a route, authenticate the signer once, check
the route's :class:`~opengroup.api.v3.calls.Access`, run the handler, and turn
any refusal into the plain-text answer clients expect.

Handlers use the database's blocking calls, so they run in a request thread; but
where the database answers without a network wait (SQLite, or PostgreSQL on
this machine) a request that only reads (a ``GET``, or a ``/batch`` of them) is
answered on the event loop itself (the setting ``reads_on_event_loop``): such
reads never wait long, and the hand-off to a thread and back cost as much CPU as
the reads. A post's checks run there too (its write goes to the group-commit
writer), unless it needs a write transaction first (a new identity's first post
under the cap): it is then answered from a thread. A reaction is tried there
too, its one write made at once if nothing holds what it needs (see
:meth:`Database.one_write_at_once`), else answered from a thread. A ``/batch`` runs its
sub-requests through :meth:`Router.handle_as` where it runs, as the outer
request's signer. Within one batch, a room's view (its
details and the signer's rights) is read once and reused by the ``GET`` items
that follow, as are the DM pages the batch read ahead (:class:`BatchReads`),
until an item of another method (which may change any of it) runs. A route may
name what its handler will read that is read before it runs on the loop, together
with the same reads of the other requests waiting for the loop
(``Route.read_ahead``: a batch poll's rooms and DM boxes, on PostgreSQL one round
trip for them all).
Likewise a ``GET`` request, and the consecutive ``GET`` items of a batch, read in
one shared read transaction (:meth:`Database.shared_reads`); an item of another
method ends it and reads in transactions of its own, which see its writes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import orjson

from opengroup.api.errors import unexpected, v3_refusal
from opengroup.api.exchange import ApiRequest
from opengroup.api.paths import PathTable
from opengroup.api.v3.calls import Access, Answer, BatchReads, Call, Handler, Later
from opengroup.api.v3.general import BATCH_PATHS
from opengroup.domain import signed_requests
from opengroup.domain.access import view_room
from opengroup.domain.community import Community
from opengroup.domain.errors import Banned, NotAuthenticated, NotPermitted, Refusal
from opengroup.domain.signed_requests import SignedRequest
from opengroup.domain.users import User
from opengroup.storage.database import WriteOnEventLoop

log = logging.getLogger(__name__)

AUTH_REQUIRED = "X-SOGS-* request authentication required"

ReadAhead = Callable[[Community, ApiRequest, User | None, BatchReads], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    """``Route("GET", "/room/{token}/message/{message_id}", handler, Access.ROOM_READER)``.

    ``{name}`` matches one path segment; ``{name:path}`` the rest of the path."""

    method: str
    path: str
    handler: Handler
    access: Access
    # The answer may be megabytes (a file): never read on the event loop.
    large_answer: bool = False
    # The handler reads, then hands its write to the event loop (a post's Later): tried
    # on the loop first, and answered from a request thread if it begins a write
    # transaction after all. It must do nothing but read before that.
    loop_until_write: bool = False
    # The handler reads, then makes one write transaction (a reaction): tried on the
    # loop first with the write made at once if no lock is in its way (see
    # Database.one_write_at_once), and answered from a request thread if not. It must
    # do nothing but read before its write, and write only once.
    one_write: bool = False
    # Answered on the event loop, what the handler will read that is read before it
    # runs, with the same reads of the other requests waiting for the loop (a poll's
    # rooms and DM boxes, see general.read_ahead_together).
    read_ahead: ReadAhead | None = None
    # What the access asks of a call, worked out once (not per request).
    needs_user: bool = field(init=False)
    needs_room: bool = field(init=False)
    right: str | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "needs_user", self.access.needs_user)
        object.__setattr__(self, "needs_room", self.access.needs_room)
        object.__setattr__(self, "right", self.access.right)


class Router:
    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = list(routes)
        self.table = PathTable(self.routes)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for ``path`` (trailing ``/`` ignored): 404 or 405 if none."""
        return self.table.match(method, path)

    def knows(self, method: str, path: str) -> bool:
        return self.table.knows(method, path)

    async def dispatch(self, community: Community, request: ApiRequest) -> tuple[Answer, str]:
        """Answer a request; also the matched route's pattern ("" if none matched), which
        logs and metrics name it by. The signer of a request for a known route is
        admitted first, with the others waiting to be admitted in this process
        (:meth:`~opengroup.domain.users.Users.admit_soon`)."""
        try:
            matched = self.match(request.method, request.path)
        except Refusal:  # (answered in the thread, as any refusal of the route table)
            return await community.threads.run(self.handle, community, request)
        route = matched[0]
        user = None
        if signed_requests.is_signed(request.headers):
            try:
                user = await community.users.admit_soon(self._signature(community, request))
            except Refusal as exc:
                return v3_refusal(exc), route.path
            except Exception as exc:
                what = f"admitting {request.method} {request.path}"
                return Answer.text(*unexpected(exc, what)), route.path
        answer = await self._answer(community, request, user, matched)
        if isinstance(answer, Later):
            answer = await self._finish(answer, request)
        return answer, route.path

    async def _answer(
        self,
        community: Community,
        request: ApiRequest,
        user: User | None,
        matched: tuple[Route, dict[str, str]],
    ) -> Answer | Later:
        """The admitted request's answer, from the event loop itself if it only reads
        and the settings say so (``reads_on_event_loop``; the activity it makes due is
        then written in a request thread), or if its route reads until it hands its
        write to the loop (a post) and it needs no write transaction of its own; else
        from a request thread."""
        route = matched[0]
        one_write = route.one_write and community.db.writes_on_loop
        if community.settings.effective_reads_on_event_loop and (
            route.loop_until_write or one_write or self._reads_only(route, request)
        ):
            try:
                return await self._answer_on_loop(community, request, user, matched, one_write)
            except WriteOnEventLoop:
                if not (route.loop_until_write or one_write):
                    raise  # (a route that only reads began a write: a fault of the code)
                # (nothing was written: answered from a thread instead)
        answer, _ = await community.threads.run(
            self._handle, community, request, True, user, BatchReads(), matched, True
        )
        return answer

    async def _answer_on_loop(
        self,
        community: Community,
        request: ApiRequest,
        user: User | None,
        matched: tuple[Route, dict[str, str]],
        one_write: bool,
    ) -> Answer | Later:
        """:meth:`_answer` on the event loop, after the route's read-ahead (if any): no
        write transaction may begin (it raises :class:`WriteOnEventLoop`), or with
        ``one_write`` one if it can be had at once; the activity the request makes due
        is written in a request thread."""
        reads = BatchReads()
        read_ahead = matched[0].read_ahead
        if read_ahead is not None:
            try:
                await read_ahead(community, request, user, reads)
            except Exception as exc:
                return _failure(exc, request)
        room_info = community.room_info
        db = community.db
        writes = db.one_write_at_once() if one_write else db.reads_only()
        with writes, room_info.activity_held_back() as activity:
            answer, _ = self._handle(community, request, True, user, reads, matched, True)
        if activity:
            try:
                await community.threads.run(room_info.write_activity, activity)
            except Exception:  # (statistics: the answer stands)
                log.exception("could not record activity for %s", request.path)
        return answer

    def _reads_only(self, route: Route, request: ApiRequest) -> bool:
        """Whether answering the request only reads, and not much: a ``GET`` other than
        of a file (megabytes, maybe), or a ``/batch`` or ``/sequence`` of such ``GET``
        items (those it cannot tell, e.g. a path with ``%`` escapes, count as writes;
        malformed ones are refused without a read)."""
        if route.method == "GET":
            return not route.large_answer
        if route.path not in BATCH_PATHS:
            return False
        try:
            items = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(items, list):
            return True
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("path"), str):
                continue
            if item.get("method") != "GET" or "%" in item["path"]:
                return False
            try:
                item_route, _ = self.match("GET", item["path"].partition("?")[0])
            except Refusal:
                continue
            if item_route.large_answer:
                return False
        return True

    @staticmethod
    async def _finish(later: Later, request: ApiRequest) -> Answer:
        """The answer of a handler's :class:`Later`, awaited on the event loop."""
        try:
            return later.then(await later.waiting)
        except Exception as exc:
            return _failure(exc, request)

    def handle(self, community: Community, request: ApiRequest) -> tuple[Answer, str]:
        """Answer a request (in this thread, its signer admitted alone), and name the
        matched route."""
        answer, route_name = self._handle(community, request, False, None, BatchReads())
        return _answered(answer), route_name

    def handle_as(
        self,
        community: Community,
        request: ApiRequest,
        signer: User | None,
        reads: BatchReads | None = None,
    ) -> Answer:
        """Answer a sub-request of a batch, as the batch's signer (its own signature
        headers, if any, are not read), sharing what the batch's items have read."""
        shared = BatchReads() if reads is None else reads
        if request.method != "GET":
            shared.clear()  # this item may change a room, someone's rights, a DM
        answer, _ = self._handle(community, request, True, signer, shared)
        return _answered(answer)

    def _handle(
        self,
        community: Community,
        request: ApiRequest,
        admitted: bool,
        signer: User | None,
        reads: BatchReads,
        matched: tuple[Route, dict[str, str]] | None = None,
        later_on_loop: bool = False,
    ) -> tuple[Answer | Later, str]:
        """``admitted``: ``signer`` is who the request is answered as (a batch's item, or
        a request admitted already), its signature headers are not read again;
        ``matched``: the route and its parameters, if the caller found them already;
        ``later_on_loop``: a handler's :class:`Later` is the caller's to await on the
        event loop (else this thread waits for it)."""
        route_name = ""
        try:
            route, params = matched or self.match(request.method, request.path)
            route_name = route.path
            user = signer if admitted else self._signer(community, request)
            call = Call(
                community,
                request,
                params,
                user,
                sub_request=lambda sub: self.handle_as(community, sub, user, reads),
                reads=reads,
            )
            if request.method == "GET":
                transactions = community.db.shared_reads()
            else:  # (a batch's item of another method forgot its reads: handle_as)
                transactions = community.db.own_reads()  # it reads back what it wrote
            with transactions:
                self._check_access(call, route)
                result = route.handler(call)
            if isinstance(result, Later) and not later_on_loop:
                result = result.then(community.threads.wait_for(result.waiting))
            answer = result if isinstance(result, Answer | Later) else Answer.json(result)
        except WriteOnEventLoop:
            raise  # (the caller answers it from a thread instead)
        except Exception as exc:
            answer = _failure(exc, request)
        return answer, route_name

    @classmethod
    def _signer(cls, community: Community, request: ApiRequest) -> User | None:
        """The user who signed the request (None: unsigned), admitted alone."""
        if not signed_requests.is_signed(request.headers):
            return None
        return community.users.admit(cls._signature(community, request))

    @staticmethod
    def _signature(community: Community, request: ApiRequest) -> SignedRequest:
        """The request's signature, checked: 401 and friends if it does not hold."""
        signed_path = request.path  # already decoded (by the transport or the batch)
        if request.query_string:
            signed_path += "?" + request.query_string
        settings = community.settings
        return signed_requests.read_signature(
            request.headers,
            request.method,
            signed_path,
            request.body,
            server_public_key=community.server_public_key,
            now=community.clock(),
            window_seconds=settings.request_time_window_seconds,
            require_blinded=settings.require_blinded_ids,
        )

    @staticmethod
    def _check_access(call: Call, route: Route) -> None:
        user = call.user
        if route.needs_user and user is None:
            raise NotAuthenticated(AUTH_REQUIRED)
        if route.access is Access.BLINDED and user is not None and not user.blinded:
            raise NotAuthenticated("this route needs a blinded id")
        if not route.needs_room:
            return
        token = call.params["token"]
        rooms = call.reads.rooms  # the rooms this request's batch has read so far
        call.room = rooms.get(token)
        if call.room is None:
            community = call.community
            keys = user.keys if user is not None else ()
            with community.db.read() as conn:
                call.room = view_room(conn, token, keys, community.clock())
            if call.request.method == "GET":
                rooms[token] = call.room
        rights = call.room.access
        if rights.banned:
            raise Banned("banned from this room")
        if route.right is not None and not getattr(rights, route.right):
            raise NotPermitted(f"this needs {route.access.value}")


def _failure(exc: Exception, request: ApiRequest) -> Answer:
    """The answer to a handler that raised (called in its ``except``): a refusal's
    status, else that of an unexpected error (:func:`errors.unexpected`)."""
    if isinstance(exc, Refusal):
        return v3_refusal(exc)
    return Answer.text(*unexpected(exc, f"{request.method} {request.path}"))


def _answered(answer: Answer | Later) -> Answer:
    """The answer of a call made without ``later_on_loop`` (which waits for a Later)."""
    if isinstance(answer, Later):
        raise TypeError("a Later reached a caller that does not await it")
    return answer
