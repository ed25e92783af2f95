"""The onion endpoints, bare ASGI apps: every poll of every client comes this way, and
Starlette's request and routing machinery would cost more here than the rest of a poll.

``POST /loki/v3/lsrpc`` (and ``/oxen/v3/lsrpc``): the v3 framing
(:mod:`.onion`), the v2 API or, for an endpoint starting with ``/``, the community
API. ``POST /oxen/v4/lsrpc``: the v4 framing (:mod:`.onion_v4`), the community API
or the v2 API under ``/legacy/``. An envelope that cannot be opened is a plain
HTTP 400 (there is no key to seal an answer with); every other answer is sealed,
with HTTP 200.
"""

from __future__ import annotations

import time

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from starlette.types import Receive, Scope, Send

from opengroup.api.errors import error_response
from opengroup.transport import onion, onion_v4
from opengroup.transport.asgi import (
    JSON,
    PLAIN,
    BodyTooLarge,
    asks_to_close,
    read_body,
    send_whole,
)
from opengroup.transport.dispatch import Dispatcher
from opengroup.transport.observe import RequestLog

ONION_ROUTE = "/loki/v3/lsrpc"
ONION_V3_ROUTES = (ONION_ROUTE, "/oxen/v3/lsrpc")
ONION_V4_ROUTE = "/oxen/v4/lsrpc"


class OnionEndpoints:
    def __init__(
        self,
        dispatcher: Dispatcher,
        requests: RequestLog,
        private_key: X25519PrivateKey,
        max_body_bytes: int,
        max_json_depth: int,
    ) -> None:
        self.dispatcher = dispatcher
        self.requests = requests
        self.private_key = private_key
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def _open(
        self, scope: Scope, receive: Receive, send: Send, transport: str, route: str, started: float
    ) -> onion.OpenedEnvelope | None:
        """The envelope of an onion request, or None once a plain HTTP refusal is sent
        (413 over ``max_onion_body_bytes``, 400 if it cannot be opened)."""
        close = asks_to_close(scope)
        try:
            body = await read_body(scope, receive, self.max_body_bytes)
            return onion.open_envelope(body, self.private_key)
        except BodyTooLarge:
            self.requests.record(transport, "POST", route, 413, started, "body too large")
            await send_whole(send, 413, b"onion request too large", PLAIN, close)
        except onion.EnvelopeError as exc:
            self.requests.record(transport, "POST", route, 400, started, f"bad envelope: {exc}")
            self.requests.onion_failure()
            await send_whole(send, 400, f"bad onion request: {exc}".encode(), PLAIN, close)
        return None

    async def v3(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /loki/v3/lsrpc``: base64 of the sealed JSON answer."""
        started = time.perf_counter()
        close = asks_to_close(scope)
        envelope = await self._open(scope, receive, send, "onion", ONION_ROUTE, started)
        if envelope is None:
            return
        dispatcher = self.dispatcher
        try:
            api_request, v3_api = onion.parse_inner_request(envelope.plaintext, self.max_json_depth)
        except onion.InnerRequestError as exc:
            answer = error_response(400, str(exc))
            self.requests.record("onion", "POST", ONION_ROUTE, 400, started, "bad inner request")
        else:
            legacy = dispatcher.legacy(api_request) if v3_api else None
            if v3_api and legacy is None:
                v3 = await dispatcher.v3(api_request, "onion")
                # The v3 API through a v3 envelope: the body of a success, else its status.
                plain = v3.body if 200 <= v3.status < 300 else b'{"status_code":%d}' % v3.status
                await send_whole(send, 200, onion.seal_response(envelope, plain), PLAIN, close)
                return
            answer = await dispatcher.v2(legacy or api_request, "onion")
        sealed = onion.seal_response(envelope, answer.encode())
        await send_whole(send, 200, sealed, PLAIN, close)

    async def v4(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /oxen/v4/lsrpc``: what every current client sends. The answer is
        bencoded, sealed, raw."""
        started = time.perf_counter()
        close = asks_to_close(scope)
        envelope = await self._open(scope, receive, send, "onion4", ONION_V4_ROUTE, started)
        if envelope is None:
            return
        dispatcher = self.dispatcher
        try:
            api_request = onion_v4.parse_request(envelope.plaintext, self.max_json_depth)
        except onion.InnerRequestError as exc:
            self.requests.record(
                "onion4", "POST", ONION_V4_ROUTE, 400, started, "bad inner request"
            )
            plain = onion_v4.encode_response(
                400, PLAIN.decode(), {}, f"Invalid v4 onion request: {exc}".encode()
            )
        else:
            legacy = dispatcher.legacy(api_request)
            if legacy is not None:
                v2 = await dispatcher.v2(legacy, "onion4")
                plain = onion_v4.encode_response(v2.status, JSON, dict(v2.headers), v2.encode())
            else:
                v3 = await dispatcher.v3(api_request, "onion4")
                plain = onion_v4.encode_response(
                    v3.status, v3.content_type, dict(v3.headers), v3.body
                )
        await send_whole(send, 200, envelope.seal(plain), b"application/octet-stream", close)
