"""The HTTP/1.1 protocol the server runs under uvicorn: uvicorn's own (httptools), with
each answer's head and body leaving in one socket write.

uvicorn writes an answer's status line and headers when the app sends
``http.response.start`` and its body on ``http.response.body``. Under uvloop each
write goes to the socket at once: two ``send`` calls, two TCP segments and two
wake-ups of the client for every answer (a sixth of a busy worker's event loop in
benchmark scenario (e), profiled). Here a write is held until the next one, which
takes it along in the same system call; a write that no other follows in the same
turn of the event loop (a ``100 Continue``, a body streamed in parts, a last chunk)
leaves at the loop's next turn, and closing the connection sends what is held first.
The order of the bytes never changes: only their grouping into writes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class PairedWrites(asyncio.Transport):
    """A connection's transport whose writes leave in pairs: each odd one waits for the
    next, or for the end of the event loop's turn, whichever comes first."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            self._loop.call_soon(self._send_held)
        else:
            self._held = None
            self._transport.writelines((held, data))

    def _send_held(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def close(self) -> None:
        self._send_held()
        self._transport.close()

    def write_eof(self) -> None:
        self._send_held()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class OneWriteHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a transport whose writes leave in pairs, so that
    an answer's head and body share one system call."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(PairedWrites(transport, self.loop))
