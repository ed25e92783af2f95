"""Many community API posts at once (docs/spec/SPEC-v3.md section 3): each request
runs in one of the worker's request threads, and its post is written by the group-
commit writer. Posts waiting for the writer must never starve it of a thread: more
simultaneous posts than the worker has request threads are all stored and answered.
"""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor

from harness.communityclient import BlindedIdentity, CommunityClient
from harness.server import ServerProcess

SERVER_ENV = {"OPENGROUP_POST_RATE_LIMIT_SECONDS": "0"}
AT_ONCE = 40  # the worker has 4 request threads on SQLite, 16 on PostgreSQL


def test_more_simultaneous_posts_than_request_threads_are_all_stored(
    server: ServerProcess,
) -> None:
    start = threading.Barrier(AT_ONCE)

    def post(n: int) -> int:
        who = BlindedIdentity.generate()
        with CommunityClient(server.base_url, server.public_key, "onion", timeout=60) as c:
            data = f"post {n}".encode()
            body = {
                "data": base64.b64encode(data).decode(),
                "signature": base64.b64encode(who.sign_message_data(data, c.server_pk)).decode(),
            }
            start.wait()
            return c.post("/room/main/message", body, identity=who).status

    with ThreadPoolExecutor(AT_ONCE) as pool:
        statuses = list(pool.map(post, range(AT_ONCE)))
    assert statuses == [201] * AT_ONCE
    with CommunityClient(server.base_url, server.public_key, "http") as c:
        stored = c.get("/room/main/messages/recent?limit=256").body
    assert len(stored) == AT_ONCE
