"""The errors the domain raises, each named by its cause and carrying a short reason.

    Refusal (reason)
    ├── InvalidInput        malformed or invalid input
    ├── NotAuthenticated    no usable credentials
    │   ├── TokenRejected       a v2 auth token missing, malformed, unknown or expired
    │   └── SignatureRejected   an X-SOGS-* signature that does not verify
    ├── NotAllowed          the caller is known but may not do this
    │   ├── Banned              banned from the room or the whole server
    │   └── NotPermitted        lacking the permission or the staff role needed
    ├── NoSuchThing         nothing there (or nothing the caller may know of)
    │   ├── NoSuchRoom, NoSuchMessage, NoSuchFile, NoSuchUser
    │   └── NoRoomImage
    ├── TooLarge            over a configured size or count limit
    │   ├── MessageTooLarge     a message's body
    │   └── FileTooLarge        an upload
    ├── NotFresh            a signed request's nonce seen before, or its time too far off
    └── RateLimited         over a configured rate limit (``retry_after_seconds``)
        ├── PostRateLimited, UploadRateLimited
        └── ChallengeRateLimited

The domain never names an HTTP status: ``opengroup.api.errors`` holds the one
table from these classes to statuses (a class not in it answers as its nearest
base that is), and each router shapes the answer its API expects. A new error
derives from the base whose answer it should get.
"""

from __future__ import annotations


class Refusal(Exception):
    """The domain refuses a request; ``reason`` is the short text its answer carries."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidInput(Refusal):
    """A value is malformed, out of range or of the wrong kind."""


class NotAuthenticated(Refusal):
    """The request lacks usable credentials (clients authenticate again)."""


class TokenRejected(NotAuthenticated):
    """A v2 auth token is missing, malformed, unknown or expired."""


class SignatureRejected(NotAuthenticated):
    """An X-SOGS-* request signature does not verify."""


class NotAllowed(Refusal):
    """The caller is known, but may not do this (never a credentials problem)."""


class Banned(NotAllowed):
    """The caller is banned from the room, or from the whole server."""


class NotPermitted(NotAllowed):
    """The caller lacks the permission (read, write, upload) or the staff role needed."""


class NoSuchThing(Refusal):
    """What the request names does not exist, or the caller may not know that it does."""


class NoSuchRoom(NoSuchThing):
    """The room does not exist, or the caller may not know that it does."""

    def __init__(self, room_id: str) -> None:
        super().__init__(f"no such room: {room_id}")


class NoSuchMessage(NoSuchThing):
    """No such message in the room, or a deleted one, or a whisper to someone else."""

    def __init__(self, message_id: int) -> None:
        super().__init__(f"no such message: {message_id}")


class NoSuchFile(NoSuchThing):
    """No such file in the room, or one that expired."""

    def __init__(self, file_id: int) -> None:
        super().__init__(f"no such file: {file_id}")


class NoSuchUser(NoSuchThing):
    """A direct message's recipient is not a user of this server."""


class NoRoomImage(NoSuchThing):
    """The room has no image."""

    def __init__(self, room_id: str) -> None:
        super().__init__(f"room {room_id} has no image")


class TooLarge(Refusal):
    """Over a configured size or count limit."""


class MessageTooLarge(TooLarge):
    """A message's body is over its limit."""


class FileTooLarge(TooLarge):
    """An upload is empty or over ``max_upload_bytes``."""


class NotFresh(Refusal):
    """A signed request's nonce was seen before, or its time is too far off."""


class RateLimited(Refusal):
    """Over a configured rate limit; ``retry_after_seconds`` says when to try again."""

    def __init__(self, reason: str, retry_after_seconds: float) -> None:
        super().__init__(reason)
        self.retry_after_seconds = retry_after_seconds


class PostRateLimited(RateLimited):
    """Too many posts in the window."""


class UploadRateLimited(RateLimited):
    """Too many uploads in the window."""


class ChallengeRateLimited(RateLimited):
    """Too many auth challenges asked for (or left unclaimed)."""
