"""``GET /``: the public rooms with their descriptions, images, join URLs and QR codes;
nothing secret.

Server-rendered from two ``string.Template`` files in ``templates/`` (no build
step, no template engine): ``home.html`` (the page) and ``room.html`` (one
room's card). Every value put into them is HTML-escaped here. Room images are
served by ``GET /web/rooms/{room_id}/image`` (see ``web/routes.py``).
"""

from __future__ import annotations

import html
from importlib import resources
from string import Template

import segno

from opengroup.domain.community import Community
from opengroup.domain.images import image_type
from opengroup.urls import join_url

TITLE = "Session open groups"


def _template(name: str) -> Template:
    return Template((resources.files(__package__) / "templates" / name).read_text("utf-8"))


PAGE = _template("home.html")
ROOM = _template("room.html")


def sniff_image_type(data: bytes) -> str:
    """The content type of a room's image; anything but an image is served as bytes."""
    return image_type(data) or "application/octet-stream"


def qr_svg(text: str) -> str:
    """The QR code of ``text`` as inline SVG (no external image to fetch)."""
    return segno.make(text, error="m").svg_inline(scale=4, svgclass="qr", omitsize=True, title=text)


def _avatar(room_id: str, name: str, has_image: bool) -> str:
    """The room's image, or its initial on a plain disc."""
    if has_image:
        src = html.escape(f"/web/rooms/{room_id}/image")
        return f'<img class="avatar" src="{src}" alt="" width="48" height="48">'
    initial = html.escape((name.strip()[:1] or "#").upper())
    return f'<span class="avatar" aria-hidden="true">{initial}</span>'


def _description(text: str | None) -> str:
    """The room's description as a paragraph (line breaks kept by the page's CSS)."""
    if not text or not text.strip():
        return ""
    return f'<p class="description">{html.escape(text.strip())}</p>'


def render_home(community: Community) -> str:
    public_hex = community.server_public_key.hex()
    public_url = community.settings.effective_public_url
    cards = []
    for room, members in community.rooms.overview():
        url = join_url(public_url, room.id, public_hex)
        cards.append(
            ROOM.substitute(
                id=html.escape(room.id),
                name=html.escape(room.name),
                avatar=_avatar(room.id, room.name, room.image_file_id is not None),
                description=_description(room.description),
                member_count=members,
                member_text=f"{members} member" + ("" if members == 1 else "s"),
                qr=qr_svg(url),
                url=html.escape(url),
            )
        )
    rooms = "\n".join(cards) or '<li class="empty">No rooms yet.</li>'
    return PAGE.substitute(
        title=html.escape(TITLE),
        rooms=rooms,
        room_count_text=f"{len(cards)} room" + ("" if len(cards) == 1 else "s"),
        public_key=public_hex,
    )
