"""The server's HTTP/1.1 transport sends an answer's head and body in one write
(opengroup/transport/http1.py): writes leave in pairs, a lone write at the event
loop's next turn, and nothing is reordered, lost or sent after the connection ends.

The transport underneath is a recording one: what is asserted is the grouping of the
bytes into system calls, which a socket's reader cannot see. The real server on a
real socket is exercised by tests/test_transport_http.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from opengroup.transport.http1 import PairedWrites


class RecordingTransport(asyncio.Transport):
    """Each write call's bytes, in order, and whether it was closed or aborted."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        assert not self.closed
        self.calls.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        assert not self.closed
        self.calls.append(b"".join(list_of_data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0


async def next_turn() -> None:
    await asyncio.sleep(0)


def run_paired(scenario: Callable[[RecordingTransport, PairedWrites], Awaitable[None]]) -> None:
    """Run ``scenario`` on a fresh event loop, with paired writes over a recording
    transport."""

    async def on_the_loop() -> None:
        raw = RecordingTransport()
        await scenario(raw, PairedWrites(raw, asyncio.get_running_loop()))

    asyncio.run(on_the_loop())


def test_a_head_and_its_body_leave_in_one_write() -> None:
    async def scenario(raw: RecordingTransport, paired: PairedWrites) -> None:
        paired.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        assert raw.calls == []
        paired.write(b"{}")
        assert raw.calls == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        await next_turn()
        assert len(raw.calls) == 1  # nothing is sent twice

    run_paired(scenario)


def test_a_lone_write_leaves_at_the_loops_next_turn() -> None:
    async def scenario(raw: RecordingTransport, paired: PairedWrites) -> None:
        paired.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert paired.get_write_buffer_size() == len(b"HTTP/1.1 100 Continue\r\n\r\n")
        await next_turn()
        assert raw.calls == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        assert paired.get_write_buffer_size() == 0

    run_paired(scenario)


def test_writes_keep_their_order_across_pairs_and_turns() -> None:
    async def scenario(raw: RecordingTransport, paired: PairedWrites) -> None:
        for part in (b"a", b"b", b"c"):
            paired.write(part)
        await next_turn()
        paired.writelines([b"d", b"e"])
        paired.write(b"f")
        await next_turn()
        assert raw.calls == [b"ab", b"c", b"de", b"f"]

    run_paired(scenario)


def test_closing_sends_what_is_held_first() -> None:
    async def scenario(raw: RecordingTransport, paired: PairedWrites) -> None:
        paired.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        paired.close()
        assert raw.calls == [b"HTTP/1.1 400 Bad Request\r\n\r\n"]
        assert raw.closed
        await next_turn()  # the scheduled send finds nothing left
        assert len(raw.calls) == 1

    run_paired(scenario)


def test_an_aborted_connection_gets_nothing_more() -> None:
    async def scenario(raw: RecordingTransport, paired: PairedWrites) -> None:
        paired.write(b"held")
        paired.abort()
        await next_turn()
        assert raw.calls == [] and raw.aborted

    run_paired(scenario)


def test_a_connection_closed_by_the_peer_gets_nothing_more() -> None:
    async def scenario(raw: RecordingTransport, paired: PairedWrites) -> None:
        paired.write(b"held")
        raw.closed = True  # the peer went away before the loop turned
        await next_turn()
        assert raw.calls == []

    run_paired(scenario)
