"""``GET /``: the public rooms with their join URLs and QR codes; nothing secret."""

from __future__ import annotations

import html

import segno

from opengroup.domain.community import Community
from opengroup.urls import join_url

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem;
       color: #1b1b1b; background: #fafafa; }}
h1 {{ font-size: 1.6rem; }}
.rooms {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(17rem, 1fr));
         gap: 1rem; padding: 0; list-style: none; }}
.room {{ background: #fff; border: 1px solid #ddd; border-radius: .6rem; padding: 1rem; }}
.room h2 {{ font-size: 1.2rem; margin: 0 0 .5rem; }}
.room svg {{ width: 100%; height: auto; max-width: 14rem; display: block; margin: .5rem auto; }}
.url {{ font-family: ui-monospace, monospace; font-size: .75rem; word-break: break-all;
        background: #f0f0f0; padding: .4rem; border-radius: .3rem; }}
button {{ margin-top: .5rem; padding: .4rem .8rem; border-radius: .3rem; border: 1px solid #999;
          background: #fff; cursor: pointer; }}
footer {{ margin-top: 2rem; font-size: .8rem; color: #666; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>Public rooms on this Session open group server. Paste a room's URL into Session's
"Join Community" screen, or scan its QR code.</p>
<ul class="rooms">
{rooms}
</ul>
<footer>{count} room(s). Server public key: <span class="url">{public_key}</span></footer>
<script>
for (const button of document.querySelectorAll("button[data-url]")) {{
  button.addEventListener("click", async () => {{
    await navigator.clipboard.writeText(button.dataset.url);
    button.textContent = "Copied";
  }});
}}
</script>
</body>
</html>
"""

ROOM = """<li class="room" id="room-{id}">
<h2>{name}</h2>
<div class="url">{url}</div>
{qr}
<button type="button" data-url="{url}">Copy URL</button>
</li>"""


def qr_svg(text: str) -> str:
    """The QR code of ``text`` as inline SVG (no external image to fetch)."""
    return segno.make(text, error="m").svg_inline(scale=4, title=text)


def render_home(community: Community) -> str:
    keys = community.keys
    assert keys is not None
    public_url = community.settings.effective_public_url
    items = []
    for room in community.rooms():
        url = join_url(public_url, room.id, keys.public_hex)
        items.append(
            ROOM.format(
                id=html.escape(room.id),
                name=html.escape(room.name),
                url=html.escape(url),
                qr=qr_svg(url),
            )
        )
    return PAGE.format(
        title="Session open groups",
        rooms="\n".join(items),
        count=len(items),
        public_key=keys.public_hex,
    )
