"""The errors the domain raises, each with the HTTP status it answers.

    ApiError (status, short reason)
    ├── BadRequest          400  malformed or invalid input
    ├── Unauthorized        401  missing, unknown or expired token (clients re-authenticate)
    ├── Forbidden           403  banned, or lacking the right (never a token problem)
    ├── NotFound            404  unknown room, message, file or endpoint
    ├── MethodNotAllowed    405  known path, other method
    ├── PayloadTooLarge     413  over a configured size limit
    ├── TooEarly            425  a signed request's nonce seen before, or its time too far off
    └── RateLimited         429  over a configured rate limit

Errors named by their cause derive from these (``NoSuchRoom`` is a ``NotFound``).

Handlers never build error responses themselves: they raise, and the
routing layer turns the exception into ``{"status_code": N, "error": reason}``.
"""

from __future__ import annotations


class ApiError(Exception):
    status = 500

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class MethodNotAllowed(ApiError):
    status = 405


class PayloadTooLarge(ApiError):
    status = 413


class TooEarly(ApiError):
    status = 425


class NoSuchRoom(NotFound):
    """The room does not exist, or the caller may not know that it does."""

    def __init__(self, room_id: str) -> None:
        super().__init__(f"no such room: {room_id}")


class NoSuchMessage(NotFound):
    """No such message in the room, or a deleted one, or a whisper to someone else."""

    def __init__(self, message_id: int) -> None:
        super().__init__(f"no such message: {message_id}")


class Banned(Forbidden):
    """The caller is banned from the room, or from the whole server."""


class NotPermitted(Forbidden):
    """The caller lacks the permission (read, write, upload) or the staff role needed."""


class RateLimited(ApiError):
    status = 429

    def __init__(self, reason: str, retry_after_seconds: float) -> None:
        super().__init__(reason)
        self.retry_after_seconds = retry_after_seconds
