"""Auth tokens: challenge, claim, revoke (per room; several per key for several devices)."""

from __future__ import annotations

from opengroup.api.exchange import JsonObject
from opengroup.api.formats import b64
from opengroup.api.routing import RoutedRequest
from opengroup.domain import values
from opengroup.domain.community import Community, Member
from opengroup.domain.errors import InvalidInput


def _room_header(req: RoutedRequest) -> str:
    if req.room is None:
        raise InvalidInput("missing Room header")
    return req.room


def challenge(og: Community, req: RoutedRequest) -> JsonObject:
    room_id = _room_header(req)
    public_key = values.session_id(req.query.get("public_key"))
    made = og.membership.challenge(room_id, public_key)
    return {
        "challenge": {
            "ciphertext": b64(made.ciphertext),
            "ephemeral_public_key": b64(made.ephemeral_public_key),
        }
    }


def claim(og: Community, req: RoutedRequest) -> JsonObject:
    room_id = _room_header(req)
    public_key = values.session_id(req.json().get("public_key"))
    og.membership.claim(room_id, req.token, public_key)
    return {}


def revoke(og: Community, req: RoutedRequest) -> JsonObject:
    og.membership.revoke(_room_header(req), req.token)
    return {}


def member_count(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    return {"member_count": og.membership.member_count(member)}
