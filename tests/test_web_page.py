"""The human page at `GET /` (docs/spec/SPEC.md section 4, docs/spec/SPEC-v3.md section 5),
checked in a headless Chromium.

The page lists every room with its name, description, member count, image, join
URL, a QR code of that URL and a copy button, and carries nothing secret; a
room's description and image may come from either API (v2's room image
endpoint, the community API's `PUT /room/:t`). Room images come from
`GET /web/rooms/{room_id}/image` (raw bytes, sniffed content type, 404 if
none). The QR codes are decoded for real from screenshots with `zbarimg`;
screenshots are kept under test-artifacts/.

Needs Debian's `chromium` and `zbar-tools` (scripts/browser installs them);
without them these tests FAIL, they never skip.
"""

from __future__ import annotations

import base64
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from harness.communityclient import BlindedIdentity, CommunityClient
from harness.server import REPO_ROOT, ServerProcess
from harness.v2client import DEFAULT_ROOM, Client, Identity, Persona
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

PersonaFactory = Callable[..., Persona]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"
INSTALL_HINT = "run scripts/browser (apt-get install -y chromium zbar-tools) and try again"


# --------------------------------------------------------------------------- helpers


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real, valid PNG of one colour (no imaging library needed)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


IMAGE = png(24, 16, (0, 168, 107))
LOBBY_DESCRIPTION = 'Say hi <script>alert("x")</script> & "welcome"\nSecond line'


@dataclass(frozen=True)
class ShownRoom:
    """A room as the page must show it."""

    id: str
    name: str
    members: int
    has_image: bool
    description: str | None = None


def join_url(server: ServerProcess, room_id: str) -> str:
    """What the page must print: http://127.0.0.1:PORT/ROOM?public_key=HEX."""
    return f"{server.base_url}/{room_id}?public_key={server.public_key.hex()}"


def decode_qr(image: Path) -> str:
    """The text of the one QR code in a PNG, decoded by zbarimg."""
    proc = subprocess.run(
        ["zbarimg", "--raw", "-q", str(image)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, f"zbarimg found no QR code in {image}: {proc.stderr}"
    return proc.stdout.strip()


def open_home(context: BrowserContext, server: ServerProcess) -> Page:
    """A new tab on GET /, loaded with its images."""
    page = context.new_page()
    response = page.goto(server.base_url + "/", wait_until="load")
    assert response is not None and response.status == 200
    return page


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright; missing tools FAIL the test."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: {INSTALL_HINT}", pytrace=False)
    if shutil.which("zbarimg") is None:
        pytest.fail(f"zbarimg is missing: {INSTALL_HINT}", pytrace=False)
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        except Exception as exc:  # any launch failure: say which browser and how to fix it
            pytest.fail(f"cannot start {CHROMIUM}: {exc}\n{INSTALL_HINT}", pytrace=False)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (desktop size, sharp enough for QR codes)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=2)
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def shown_rooms(
    server: ServerProcess, setup_client: Client, make_persona: PersonaFactory
) -> list[ShownRoom]:
    """Rooms with 3, 1 and 0 members. The lobby has a real PNG image set through the v2
    API and a description set through the community API; `community` has both set
    through the community API."""
    lobby = ShownRoom("lobby", 'Lobby <b>&</b> "friends"', 3, True, LOBBY_DESCRIPTION)
    quiet = ShownRoom("quiet_room", "Quiet", 0, False)
    main = ShownRoom(DEFAULT_ROOM, "Main", 1, False)
    community = ShownRoom("community", "Community", 0, True, "Set through the community API")
    server.cli("rooms", "add", lobby.id, lobby.name)
    server.cli("rooms", "add", quiet.id, quiet.name)
    server.cli("rooms", "add", community.id, community.name)
    moderator = Identity.generate()
    server.cli("moderators", "add", moderator.session_id, lobby.id)
    token = make_persona(moderator, lobby.id).token
    make_persona(room=lobby.id)
    make_persona(room=lobby.id)
    make_persona(room=DEFAULT_ROOM)
    result = setup_client.request(
        "POST",
        f"rooms/{lobby.id}/image",
        body={"file": base64.b64encode(IMAGE).decode()},
        token=token,
    )
    assert result["status_code"] == 200, result
    admin = BlindedIdentity.generate()
    for room in (lobby, community):
        server.cli("moderators", "add", admin.session_id, room.id, "--admin")
    with CommunityClient(server.base_url, server.public_key, "http") as c:
        answer = c.post(f"/room/{community.id}/file", body=IMAGE, identity=admin)
        assert answer.status == 201, answer
        changes = {"image": answer.body["id"], "description": community.description}
        answer = c.put(f"/room/{community.id}", changes, identity=admin)
        assert answer.status == 200, answer
        answer = c.put(f"/room/{lobby.id}", {"description": lobby.description}, identity=admin)
        assert answer.status == 200, answer
    return [lobby, main, quiet, community]


@pytest.fixture(scope="module")
def sniffing_room(server: ServerProcess, make_persona: PersonaFactory) -> Persona:
    """A room for image-type tests, and its moderator."""
    server.cli("rooms", "add", "sniffing", "Sniffing")
    moderator = Identity.generate()
    server.cli("moderators", "add", moderator.session_id, "sniffing")
    return make_persona(moderator, "sniffing")


# --------------------------------------------------------------------------- the page


def test_page_lists_every_room_with_name_member_count_and_join_url(
    server: ServerProcess, context: BrowserContext, shown_rooms: list[ShownRoom]
) -> None:
    page = open_home(context, server)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-desktop.png"), full_page=True)
    listed = [line.split("\t")[0] for line in server.cli("rooms", "list").stdout.splitlines()]
    shown = page.locator("li.room").evaluate_all("cards => cards.map(c => c.dataset.roomId)")
    assert sorted(shown) == sorted(listed)
    for room in shown_rooms:
        card = page.locator(f"#room-{room.id}")
        assert card.locator("h2").inner_text() == room.name  # shown as text, not markup
        assert card.locator("h2 b").count() == 0
        plural = "member" if room.members == 1 else "members"
        assert card.locator(".members").inner_text() == f"{room.members} {plural}"
        assert card.locator(".url").inner_text() == join_url(server, room.id)
        assert card.locator("button.copy").get_attribute("data-url") == join_url(server, room.id)
    assert (ARTIFACTS / "web-page-desktop.png").read_bytes().startswith(b"\x89PNG")


def test_page_shows_each_room_description_as_text(
    server: ServerProcess, context: BrowserContext, shown_rooms: list[ShownRoom]
) -> None:
    page = open_home(context, server)
    for room in shown_rooms:
        shown = page.locator(f"#room-{room.id} .description")
        if room.description is None:
            assert shown.count() == 0, f"{room.id} has no description but the page shows one"
            continue
        assert shown.inner_text() == room.description  # line break kept, markup as text
        assert shown.locator("script").count() == 0


def test_page_urls_are_the_ones_the_cli_prints(
    server: ServerProcess, shown_rooms: list[ShownRoom]
) -> None:
    where = {"OPENGROUP_HOST": "127.0.0.1", "OPENGROUP_PORT": str(server.port)}
    output = server.cli("url", env=where).stdout
    printed = dict(line.split("\t", 1) for line in output.splitlines() if "\t" in line)
    page = httpx.get(server.base_url + "/", trust_env=False).text
    for room in shown_rooms:
        assert printed[room.id] == join_url(server, room.id)
        assert join_url(server, room.id) in page


def test_room_image_loads_in_the_browser(
    server: ServerProcess, context: BrowserContext, shown_rooms: list[ShownRoom]
) -> None:
    page = open_home(context, server)
    for room in shown_rooms:
        images = page.locator(f"#room-{room.id} img.avatar")
        if not room.has_image:
            assert images.count() == 0, f"{room.id} has no image but the page shows one"
            continue
        size = images.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
        assert size == [True, 24, 16]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_each_qr_code_decodes_to_its_room_join_url(
    server: ServerProcess,
    browser: Browser,
    shown_rooms: list[ShownRoom],
    scheme: Literal["light", "dark"],
) -> None:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, device_scale_factor=2, color_scheme=scheme
    )
    try:
        page = open_home(context, server)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"web-page-{scheme}.png"), full_page=True)
        for room in shown_rooms:
            shot = ARTIFACTS / f"web-page-qr-{room.id}-{scheme}.png"
            page.locator(f"#room-{room.id} svg.qr").screenshot(path=str(shot))
            assert decode_qr(shot) == join_url(server, room.id)
    finally:
        context.close()


@pytest.mark.parametrize(
    "clipboard_api",
    [
        pytest.param(True, id="clipboard-api"),
        pytest.param(False, id="no-clipboard-api-plain-http"),
    ],
)
def test_copy_button_copies_the_url_and_says_so(
    server: ServerProcess,
    context: BrowserContext,
    shown_rooms: list[ShownRoom],
    clipboard_api: bool,
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base_url)
    if not clipboard_api:  # as on plain http under a public name: not a secure context
        context.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: null})")
    page = open_home(context, server)
    button = page.locator("#room-lobby button.copy")
    assert button.inner_text() == "Copy URL"
    button.click()
    page.wait_for_function(
        "b => b.textContent === 'Copied!'", arg=button.element_handle(), timeout=3000
    )
    if clipboard_api:
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == join_url(server, "lobby")


def test_page_fits_a_phone_screen_without_sideways_scrolling(
    server: ServerProcess, browser: Browser, shown_rooms: list[ShownRoom]
) -> None:
    phone = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    try:
        page = open_home(phone, server)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-page-phone.png"), full_page=True)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        boxes = [card.bounding_box() for card in page.locator("li.room").all()]
        lefts = {round(box["x"]) for box in boxes if box is not None}
        assert len(lefts) == 1, f"cards should stack in one column on a phone: {lefts}"
    finally:
        phone.close()


def test_page_shows_nothing_secret(
    server: ServerProcess, make_persona: PersonaFactory, shown_rooms: list[ShownRoom]
) -> None:
    if "secret_room" not in server.cli("rooms", "list").stdout:
        server.cli("rooms", "add", "secret_room", "Secrets")
    member = make_persona(room="secret_room")
    page = httpx.get(server.base_url + "/", trust_env=False).text
    pem = (server.data_dir / "x25519_private_key.pem").read_bytes()
    private = serialization.load_pem_private_key(pem, password=None)
    raw = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    secrets = {
        "private key (hex)": raw.hex(),
        "private key (base64)": base64.b64encode(raw).decode(),
        "private key PEM body": pem.decode().splitlines()[1],
        "a member's token": member.token,
        "a member's session id": member.session_id,
    }
    for what, value in secrets.items():
        assert value.lower() not in page.lower(), f"the page shows {what}"
    assert server.public_key.hex() in page  # the public key is public


# --------------------------------------------------------------------------- the image route


def test_web_image_route_serves_the_raw_image_with_its_type(
    server: ServerProcess, shown_rooms: list[ShownRoom]
) -> None:
    resp = httpx.get(f"{server.base_url}/web/rooms/lobby/image", trust_env=False)
    assert resp.status_code == 200
    assert resp.content == IMAGE
    assert resp.headers["content-type"] == "image/png"
    assert resp.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "room_id",
    [
        pytest.param("quiet_room", id="room-without-image"),
        pytest.param("no_such_room", id="unknown-room"),
    ],
)
def test_web_image_route_answers_404_without_an_image(
    server: ServerProcess, shown_rooms: list[ShownRoom], room_id: str
) -> None:
    resp = httpx.get(f"{server.base_url}/web/rooms/{room_id}/image", trust_env=False)
    assert resp.status_code == 404
    assert not resp.headers["content-type"].startswith("image/")


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        pytest.param(b"\xff\xd8\xff\xe0" + bytes(60), "image/jpeg", id="jpeg"),
        pytest.param(b"GIF89a" + bytes(60), "image/gif", id="gif"),
        pytest.param(b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(60), "image/webp", id="webp"),
        pytest.param(
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "application/octet-stream",
            id="svg-is-never-an-image",
        ),
        pytest.param(b"plain bytes", "application/octet-stream", id="unknown"),
    ],
)
def test_web_image_route_sniffs_the_content_type(
    server: ServerProcess,
    setup_client: Client,
    sniffing_room: Persona,
    data: bytes,
    content_type: str,
) -> None:
    room_id, token = sniffing_room.room, sniffing_room.token
    body = {"file": base64.b64encode(data).decode()}
    result = setup_client.request("POST", f"rooms/{room_id}/image", body=body, token=token)
    assert result["status_code"] == 200, result
    resp = httpx.get(f"{server.base_url}/web/rooms/{room_id}/image", trust_env=False)
    assert resp.status_code == 200
    assert resp.content == data
    assert resp.headers["content-type"] == content_type


def test_a_room_nobody_may_see_is_not_on_the_page_nor_its_image(
    server: ServerProcess, setup_client: Client, sniffing_room: Persona
) -> None:
    """The page shows what an anonymous community API caller may see: a room whose
    defaults neither let people read it nor know of it is left out, image included."""
    room_id, token = sniffing_room.room, sniffing_room.token
    body = {"file": base64.b64encode(IMAGE).decode()}
    assert (
        setup_client.request("POST", f"rooms/{room_id}/image", body=body, token=token)[
            "status_code"
        ]
        == 200
    )
    image_url = f"{server.base_url}/web/rooms/{room_id}/image"

    server.cli("rooms", "permissions", room_id, "--no-read", "--no-accessible")
    try:
        page = httpx.get(server.base_url + "/", trust_env=False).text
        assert f'id="room-{room_id}"' not in page
        assert join_url(server, room_id) not in page
        assert httpx.get(image_url, trust_env=False).status_code == 404
    finally:
        server.cli("rooms", "permissions", room_id, "--read", "--accessible")

    assert f'id="room-{room_id}"' in httpx.get(server.base_url + "/", trust_env=False).text
    assert httpx.get(image_url, trust_env=False).content == IMAGE
