"""What each refusal answers: the one table from the domain's errors (and the routers'
own) to HTTP statuses, and the shape each API gives a refusal.

The domain names an error by its cause (:mod:`opengroup.domain.errors`); the
status comes from :data:`STATUSES`, by the error's class or else its nearest
base in the table, so a new error answers as the base it derives from. The v2
API answers ``{"status_code": N, "error": reason}`` (and ``retry_after`` when
rate limited); the community API the reason as plain text. Both send
``Retry-After`` with a rate limit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from opengroup.api.exchange import ApiResponse
from opengroup.api.v3.calls import Answer
from opengroup.domain.errors import (
    InvalidInput,
    NoSuchThing,
    NotAllowed,
    NotAuthenticated,
    NotFresh,
    RateLimited,
    Refusal,
    TooLarge,
)
from opengroup.storage.database import connection_lost, failure_reason

log = logging.getLogger(__name__)


class NoSuchEndpoint(NoSuchThing):
    """No route of the API has the path."""


class MethodNotAllowed(Refusal):
    """Routes have the path, but for other methods."""


STATUSES: Mapping[type[Refusal], int] = {
    InvalidInput: 400,
    NotAuthenticated: 401,
    NotAllowed: 403,
    NoSuchThing: 404,
    MethodNotAllowed: 405,
    TooLarge: 413,
    NotFresh: 425,
    RateLimited: 429,
}
UNEXPECTED = 500


def status_of(error: Refusal) -> int:
    """The status ``error`` answers with: its class's in :data:`STATUSES`, else the
    nearest base's."""
    for cls in type(error).__mro__:
        status = STATUSES.get(cls)
        if status is not None:
            return status
    return UNEXPECTED


def retry_after(error: RateLimited) -> int:
    """Whole seconds to wait, at least 1: the window's hint plus half a second, rounded."""
    return max(1, round(error.retry_after_seconds + 0.5))


def error_response(
    status: int, reason: str, headers: Mapping[str, str] | None = None
) -> ApiResponse:
    """The v2 API's one error shape: ``{"status_code": N, "error": "short reason"}``."""
    return ApiResponse(status, {"status_code": status, "error": reason}, headers or {})


def v2_refusal(error: Refusal) -> ApiResponse:
    status = status_of(error)
    if isinstance(error, RateLimited):
        retry = retry_after(error)
        response = error_response(status, error.reason, {"Retry-After": str(retry)})
        response.body["retry_after"] = retry
        return response
    return error_response(status, error.reason)


def v3_refusal(error: Refusal) -> Answer:
    status = status_of(error)
    if isinstance(error, RateLimited):
        return Answer.text(status, error.reason, {"retry-after": str(retry_after(error))})
    return Answer.text(status, error.reason)


def unexpected(exc: Exception, what: str) -> tuple[int, str]:
    """The status and reason for an exception no rule expected (called in its
    ``except``), logged: 503 for a lost database connection, in one line (the pool
    reconnects, the client polls again); else 500, with the traceback."""
    if connection_lost(exc):
        log.warning("database connection lost in %s: %s", what, failure_reason(exc))
        return 503, "database unavailable; try again"
    log.exception("unexpected error in %s", what)
    return 500, "internal server error"
