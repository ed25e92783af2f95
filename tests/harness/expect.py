"""What a test expects of one answer, said once for every module: a success, an error
or refusal of one status, a rate limit. Each returns what the test reads next.

The two APIs answer differently. A v2 answer is a JSON object whose ``status_code`` is
the status (direct HTTP: also the HTTP status); every v2 error has one shape,
``{"status_code": N, "error": "<short reason>"}``, plus ``retry_after`` (whole seconds)
on a 429 (docs/spec/SPEC.md section 3). A community API answer (``CommunityAnswer``)
has its own status; a success is JSON, a refusal a short ``text/plain; charset=utf-8``
reason, a 429 with a ``Retry-After`` header (docs/API.md).

Answers may be given as the client parsed them or as the raw ``httpx.Response`` of a
direct request, whose status line and content type are then checked too. No error may
show the server's insides (a traceback, a driver's name).
"""

from __future__ import annotations

import subprocess
from typing import Any, overload

import httpx

from .communityclient import CONTENT_JSON, CONTENT_TEXT, CommunityAnswer

# What no error text may contain: the server's insides.
LEAKS = ("Traceback", 'File "', "Exception", "sqlalchemy", "psycopg", "sqlite3")
SHORT = 300  # an error's reason is at most this long

V2Answer = dict[str, Any]


def _no_leak(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, text


# --------------------------------------------------------------------------- v2 answers


def expect_v2_answer(answer: V2Answer | httpx.Response) -> V2Answer:
    """A v2 answer of any status; of a raw response, its JSON object after checking it
    is declared JSON and its HTTP status is its ``status_code``."""
    if not isinstance(answer, httpx.Response):
        return answer
    assert answer.headers.get("content-type", "").startswith("application/json"), answer.headers
    result = answer.json()
    assert isinstance(result, dict), result
    assert answer.status_code == result.get("status_code"), (answer.status_code, result)
    return result


# --------------------------------------------------------------------------- successes


@overload
def expect_ok(answer: CommunityAnswer, status: int = 200) -> Any: ...


@overload
def expect_ok(answer: V2Answer | httpx.Response, status: int = 200) -> V2Answer: ...


def expect_ok(answer: CommunityAnswer | V2Answer | httpx.Response, status: int = 200) -> Any:
    """A success of ``status``: a community answer's JSON body, or the v2 answer."""
    if isinstance(answer, CommunityAnswer):
        assert answer.status == status, answer
        assert answer.content_type == CONTENT_JSON, answer
        return answer.body
    result = expect_v2_answer(answer)
    assert result["status_code"] == status, result
    return result


# --------------------------------------------------------------------------- v2 errors


def expect_error(
    answer: V2Answer | httpx.Response, status: int, reason: str | None = None
) -> V2Answer:
    """The v2 error shape with ``status`` (and exactly ``reason``, if given)."""
    result = expect_v2_answer(answer)
    assert result.get("status_code") == status, result
    shape = {"status_code", "error", "retry_after"} if status == 429 else {"status_code", "error"}
    assert set(result) == shape, result
    error = result["error"]
    assert isinstance(error, str) and 0 < len(error) < SHORT, result
    _no_leak(error)
    if reason is not None:
        assert error == reason, result
    return result


# --------------------------------------------------------------------------- community API refusals


def _community(answer: CommunityAnswer | httpx.Response) -> CommunityAnswer:
    if isinstance(answer, CommunityAnswer):
        return answer
    content_type = answer.headers.get("content-type", "")
    return CommunityAnswer(
        answer.status_code, dict(answer.headers), answer.text, content_type, answer.content
    )


def expect_refused(
    answer: CommunityAnswer | httpx.Response, status: int, text: str | None = None
) -> str:
    """A community API refusal of ``status``: a short plain text (exactly ``text``, if
    given); the text."""
    refusal = _community(answer)
    assert refusal.status == status, refusal
    assert refusal.content_type == CONTENT_TEXT, refusal
    assert isinstance(refusal.body, str) and 0 < len(refusal.body) < SHORT, refusal
    _no_leak(refusal.body)
    if text is not None:
        assert refusal.body == text, refusal
    return refusal.body


# --------------------------------------------------------------------------- rate limits


def expect_rate_limited(
    answer: CommunityAnswer | V2Answer | httpx.Response,
    most_seconds: float | None = None,
    reason_has: str | None = None,
) -> int:
    """A 429 of either API whose retry hint is a whole number of seconds, at least 1 (and
    at most ``most_seconds``); its reason naming ``reason_has``. The hint."""
    if isinstance(answer, CommunityAnswer):
        reason = expect_refused(answer, 429)
        retry_text = answer.headers.get("retry-after", "")
        assert retry_text.isdigit(), answer.headers
        retry = int(retry_text)
    else:
        result = expect_error(answer, 429)
        reason, retry = result["error"], result["retry_after"]
        assert isinstance(retry, int) and not isinstance(retry, bool), result
    assert retry >= 1, retry
    if most_seconds is not None:
        assert retry <= most_seconds, (retry, most_seconds)
    if reason_has is not None:
        assert reason_has in reason, reason
    return retry


# --------------------------------------------------------------------------- operator commands


def expect_cli_refused(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """A refused command: a non-zero exit, no traceback, an error naming ``words``
    (case aside) on stderr; that error."""
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Traceback" not in output, output
    for word in words:
        assert word.lower() in proc.stderr.lower(), proc.stderr
    return proc.stderr
