"""opengroup.api.errors: the one table from the domain's errors to HTTP statuses, and
the shape each API gives a refusal.

Rules pinned here:

* Every error the domain defines answers with a status of the table (never the 500
  of the unexpected), by its own class or its nearest base: causes answer as their
  kind (``NoSuchRoom`` 404, ``Banned`` 403, ``PostRateLimited`` 429, ...).
* An error class added later answers as the base it derives from, without a row of
  its own.
* The v2 shape is ``{"status_code": N, "error": reason}``; the community API's the
  reason as plain text. A rate limit adds ``Retry-After`` (whole seconds, at least 1:
  the hint plus half a second, rounded) to both, and ``retry_after`` to the v2 body.
"""

from __future__ import annotations

import inspect

import pytest

from opengroup.api import errors as api_errors
from opengroup.api.errors import STATUSES, status_of, v2_refusal, v3_refusal
from opengroup.domain import errors, spam
from opengroup.domain.errors import (
    Banned,
    ChallengeRateLimited,
    FileTooLarge,
    InvalidInput,
    MessageTooLarge,
    NoRoomImage,
    NoSuchFile,
    NoSuchMessage,
    NoSuchRoom,
    NoSuchUser,
    NotFresh,
    NotPermitted,
    PostRateLimited,
    RateLimited,
    Refusal,
    SignatureRejected,
    TokenRejected,
    UploadRateLimited,
)

DEFINED = sorted(
    {
        cls
        for module in (errors, api_errors, spam)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, Refusal) and cls is not Refusal
    },
    key=lambda cls: cls.__name__,
)


@pytest.mark.parametrize("cls", DEFINED, ids=lambda cls: cls.__name__)
def test_every_defined_error_has_a_status_of_the_table(cls: type[Refusal]) -> None:
    assert any(base in STATUSES for base in cls.__mro__), f"{cls.__name__} has no status"


@pytest.mark.parametrize(
    "error, status",
    [
        pytest.param(InvalidInput("bad"), 400, id="InvalidInput"),
        pytest.param(TokenRejected("missing auth token"), 401, id="TokenRejected"),
        pytest.param(SignatureRejected("no"), 401, id="SignatureRejected"),
        pytest.param(Banned("banned from this room"), 403, id="Banned"),
        pytest.param(NotPermitted("moderators only"), 403, id="NotPermitted"),
        pytest.param(NoSuchRoom("main"), 404, id="NoSuchRoom"),
        pytest.param(NoSuchMessage(7), 404, id="NoSuchMessage"),
        pytest.param(NoSuchFile(7), 404, id="NoSuchFile"),
        pytest.param(NoSuchUser("no such user"), 404, id="NoSuchUser"),
        pytest.param(NoRoomImage("main"), 404, id="NoRoomImage"),
        pytest.param(api_errors.NoSuchEndpoint("no such endpoint: /x"), 404, id="NoSuchEndpoint"),
        pytest.param(api_errors.MethodNotAllowed("PUT"), 405, id="MethodNotAllowed"),
        pytest.param(MessageTooLarge("big"), 413, id="MessageTooLarge"),
        pytest.param(FileTooLarge("big"), 413, id="FileTooLarge"),
        pytest.param(NotFresh("nonce"), 425, id="NotFresh"),
        pytest.param(PostRateLimited("posts", 1.0), 429, id="PostRateLimited"),
        pytest.param(UploadRateLimited("uploads", 1.0), 429, id="UploadRateLimited"),
        pytest.param(ChallengeRateLimited("challenges", 1.0), 429, id="ChallengeRateLimited"),
        pytest.param(Refusal("no kind"), 500, id="a bare Refusal"),
    ],
)
def test_each_cause_answers_as_its_kind(error: Refusal, status: int) -> None:
    assert status_of(error) == status


def test_an_error_added_later_answers_as_its_base() -> None:
    class SlowModeLimited(PostRateLimited):
        pass

    class NoSuchReaction(NoSuchMessage):
        pass

    assert status_of(SlowModeLimited("one post per minute", 30.0)) == 429
    assert status_of(spam.SlowModeLimited("slow mode", 30.0)) == 429
    assert status_of(NoSuchReaction(3)) == 404


def test_the_room_names_and_message_ids_of_the_causes_read_as_before() -> None:
    assert NoSuchRoom("main").reason == "no such room: main"
    assert NoSuchMessage(12).reason == "no such message: 12"
    assert NoSuchFile(5).reason == "no such file: 5"
    assert NoRoomImage("lobby").reason == "room lobby has no image"


def test_the_v2_shape() -> None:
    answer = v2_refusal(NoSuchRoom("main"))
    assert (answer.status, answer.body, dict(answer.headers)) == (
        404,
        {"status_code": 404, "error": "no such room: main"},
        {},
    )


def test_the_community_api_shape() -> None:
    answer = v3_refusal(Banned("banned from this room"))
    assert (answer.status, answer.body, answer.content_type, dict(answer.headers)) == (
        403,
        b"banned from this room",
        "text/plain; charset=utf-8",
        {},
    )


@pytest.mark.parametrize(
    "seconds, retry",
    [
        pytest.param(0.0, 1, id="now: 1 s"),
        pytest.param(0.2, 1, id="0.2 s: 1 s"),
        pytest.param(1.0, 2, id="1 s: 2 s"),
        pytest.param(4.6, 5, id="4.6 s: 5 s"),
    ],
)
def test_a_rate_limit_says_when_to_come_back_in_both_shapes(seconds: float, retry: int) -> None:
    limited = RateLimited("at most 5 posts per 16 s", seconds)
    v2 = v2_refusal(limited)
    assert v2.status == 429
    assert v2.body == {
        "status_code": 429,
        "error": "at most 5 posts per 16 s",
        "retry_after": retry,
    }
    assert dict(v2.headers) == {"Retry-After": str(retry)}
    v3 = v3_refusal(limited)
    assert (v3.status, v3.body, dict(v3.headers)) == (
        429,
        b"at most 5 posts per 16 s",
        {"retry-after": str(retry)},
    )
