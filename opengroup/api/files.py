"""Files: upload into a room, download from it."""

from __future__ import annotations

from opengroup.api.exchange import JsonObject
from opengroup.api.formats import b64
from opengroup.api.routing import RoutedRequest
from opengroup.domain import values
from opengroup.domain.community import Community, Member


def upload(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    data = values.base64_bytes(req.json().get("file"), "file")
    return {"result": og.files.upload(member, data)}


def download(og: Community, req: RoutedRequest, member: Member) -> JsonObject:
    file_id = values.integer(req.path_params["file_id"], "file id")
    return {"result": b64(og.files.download(member, file_id))}
