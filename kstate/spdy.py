"""SPDY/3.1 framing, just enough for both ends of Kubernetes' remote-command streams.

Where it sits: shared below every layer (pure framing over a ``read_exactly``/``write``
pair, no I/O of its own), used at two places in the flow:

* the **server** end, in the API server: kubectl -> ``Upgrade: SPDY/3.1`` (or a WebSocket
  carrying SPDY, for port-forward) -> this session -> ``kstate.api.server.streams``
  bridges each SPDY stream to the node agent;
* the **client** end, in the containerd adapter: its CRI ``Exec``/``Attach``/
  ``PortForward`` answer with a URL on containerd's streaming server, which speaks the
  same protocol with the roles reversed (``kstate.runtime.containerd_streams``).

kubectl (client-go's ``httpstream/spdy`` over moby's ``spdystream``) opens one SPDY
stream per channel (``streamtype: stdin|stdout|stderr|error|resize`` for exec and attach;
an ``error`` and a ``data`` stream per connection for port-forward), waits for each stream's
SYN_REPLY, then reads and writes DATA frames; a DATA frame with FIN half-closes.

The wire format (draft 3 of the SPDY protocol, which "SPDY/3.1" upgrades speak):

* control frame: ``1 | version=3 (15 bits) | type (16) | flags (8) | length (24) | data``;
* data frame: ``0 | stream id (31) | flags (8) | length (24) | data``;
* header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are zlib-compressed with a fixed
  dictionary, one compression context per direction for the whole session, each block
  ending in a sync flush.

Only what these two ends need is implemented: streams are created by the client (odd
ids, :meth:`Session.open`), the server replies, answers PINGs and ends with GOAWAY.
spdystream does no flow control, so WINDOW_UPDATE and SETTINGS are read and ignored.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger("kstate.api.spdy")

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9)
FLAG_FIN = 0x01
#: RST_STREAM statuses this server sends.
RST_PROTOCOL_ERROR, RST_CANCEL = 1, 5
#: Larger frames are refused (kubectl writes at most 32 KiB at a time).
MAX_FRAME = 1 << 24

_HEADER_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding "
    "accept-language accept-ranges age allow authorization cache-control connection "
    "content-base content-encoding content-language content-length content-location "
    "content-md5 content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
    "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
    "server te trailer transfer-encoding upgrade user-agent vary via warning "
    "www-authenticate method get status 200_OK version HTTP/1.1 url public set-cookie "
    "keep-alive origin")
_HEADER_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
    "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
    "charset=iso-8859-1,utf-,*,enq=0.")


def _dictionary() -> bytes:
    """SPDY/3's zlib dictionary: length-prefixed common header words (``_`` stands for
    the space in ``200 OK``), then a tail of common values."""
    words = [w.replace("_", " ") for w in _HEADER_WORDS.split()]
    prefix = b"".join(struct.pack(">I", len(w)) + w.encode() for w in words)
    return prefix + _HEADER_TAIL.encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3 (the session ends)."""


class HeaderCodec:
    """One direction's header-block compression (the context spans the session)."""

    def __init__(self) -> None:
        self._compress = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 9,
                                          zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
        self._decompress = zlib.decompressobj(15, DICTIONARY)

    def encode(self, headers: Mapping[str, str]) -> bytes:
        block = struct.pack(">I", len(headers))
        for name, value in headers.items():
            n, v = name.lower().encode(), value.encode()
            block += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
        return self._compress.compress(block) + self._compress.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, data: bytes) -> dict[str, str]:
        try:
            block = self._decompress.decompress(data)
        except zlib.error as err:
            raise ProtocolError(f"bad header block: {err}") from None
        try:
            (count,), pos = struct.unpack_from(">I", block), 4
            headers: dict[str, str] = {}
            for _ in range(count):
                (n,) = struct.unpack_from(">I", block, pos)
                name = block[pos + 4:pos + 4 + n].decode()
                pos += 4 + n
                (v,) = struct.unpack_from(">I", block, pos)
                value = block[pos + 4:pos + 4 + v].decode()
                pos += 4 + v
                headers[name] = value
        except (struct.error, UnicodeDecodeError) as err:
            raise ProtocolError(f"bad header block: {err}") from None
        return headers


def control_frame(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF,
                       ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


class Stream:
    """One client-opened SPDY stream, seen from either end."""

    def __init__(self, session: Session, stream_id: int, headers: dict[str, str]) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.remote_closed = False
        self.local_closed = False
        #: Set when the server's SYN_REPLY arrived (client end) or the session ended.
        self.replied = asyncio.Event()

    def _feed(self, data: bytes, fin: bool) -> None:
        if self.remote_closed:
            return
        if data:
            self._incoming.put_nowait(data)
        if fin:
            self.remote_closed = True
            self._incoming.put_nowait(b"")

    async def read(self) -> bytes:
        """The next chunk the client sent; ``b""`` once it half-closed (or reset)."""
        return await self._incoming.get()

    async def write(self, data: bytes) -> None:
        if not self.local_closed and data:
            await self.session.send(data_frame(self.id, data))

    async def close(self) -> None:
        """Half-close: the client reads EOF on this stream."""
        if not self.local_closed:
            self.local_closed = True
            await self.session.send(data_frame(self.id, b"", fin=True))


Reader = Callable[[int], Awaitable[bytes]]
Writer = Callable[[bytes], Awaitable[None]]


class Session:
    """One SPDY connection over ``read_exactly`` / ``write``, either end.

    Run :meth:`serve` as a task (it reads frames, whichever end this is). The server end
    takes the client's streams from :meth:`accept` (replied to already); the client end
    makes its own with :meth:`open`. ``serve`` returns when the peer goes away or sends
    GOAWAY; every stream then reads EOF and :meth:`accept` returns None.
    """

    def __init__(self, read_exactly: Reader, write: Writer) -> None:
        self._read = read_exactly
        self._write = write
        self._codec = HeaderCodec()
        self._lock = asyncio.Lock()
        self._streams: dict[int, Stream] = {}
        self._new: asyncio.Queue[Stream | None] = asyncio.Queue()
        self._next_id = 1
        self.closed = False

    async def send(self, frame: bytes) -> None:
        if self.closed:
            return
        async with self._lock:  # a frame is written whole, never interleaved
            try:
                await self._write(frame)
            except (ConnectionError, RuntimeError):
                self.closed = True

    async def accept(self) -> Stream | None:
        return await self._new.get()

    async def open(self, headers: Mapping[str, str]) -> Stream:
        """Client end: open a stream and wait for the server's SYN_REPLY (spdystream, like
        client-go, writes nothing before it). ``ProtocolError`` if the session ends first."""
        async with self._lock:  # ids go out in order, each header block whole
            stream_id, self._next_id = self._next_id, self._next_id + 2
            stream = Stream(self, stream_id, dict(headers))
            self._streams[stream_id] = stream
            payload = struct.pack(">IIH", stream_id, 0, 0) + self._codec.encode(headers)
            try:
                await self._write(control_frame(SYN_STREAM, 0, payload))
            except (ConnectionError, RuntimeError):
                self.closed = True
        if self.closed:  # serve() has ended (or will not see a reply): do not wait
            stream.replied.set()
        await stream.replied.wait()
        if self.closed:
            raise ProtocolError(f"the session ended before stream {dict(headers)} opened")
        return stream

    async def serve(self) -> None:
        try:
            while True:
                head = await self._read(8)
                first, second = struct.unpack(">II", head)
                length = second & 0xFFFFFF
                flags = second >> 24
                payload = await self._read(length) if length else b""
                if first & 0x80000000:
                    await self._control((first >> 16) & 0x7FFF, first & 0xFFFF, flags,
                                        payload)
                else:
                    stream = self._streams.get(first & 0x7FFFFFFF)
                    if stream is not None:
                        stream._feed(payload, bool(flags & FLAG_FIN))
        except (asyncio.IncompleteReadError, ConnectionError, _GoAway):
            pass
        except ProtocolError as err:  # not kubectl's SPDY: drop the connection
            log.info("SPDY session ended: %s", err)
        finally:
            self.closed = True
            for stream in self._streams.values():
                stream._feed(b"", True)
                stream.replied.set()
            self._new.put_nowait(None)

    async def _control(self, version: int, kind: int, flags: int, payload: bytes) -> None:
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version} is not supported (3 is)")
        if kind == SYN_STREAM:
            if len(payload) < 10:
                raise ProtocolError("short SYN_STREAM frame")
            stream_id = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
            stream = Stream(self, stream_id, self._codec.decode(payload[10:]))
            self._streams[stream_id] = stream
            reply = struct.pack(">I", stream_id) + self._codec.encode({})
            await self.send(control_frame(SYN_REPLY, 0, reply))
            if flags & FLAG_FIN:
                stream._feed(b"", True)
            self._new.put_nowait(stream)
        elif kind == SYN_REPLY:
            stream_id = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
            self._codec.decode(payload[4:])  # keeps the shared zlib context in step
            if (opened := self._streams.get(stream_id)) is not None:
                opened.replied.set()
        elif kind == RST_STREAM:
            stream_id = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
            if (gone := self._streams.get(stream_id)) is not None:
                gone.local_closed = True
                gone._feed(b"", True)
                gone.replied.set()
        elif kind == PING:
            await self.send(control_frame(PING, 0, payload))
        elif kind == GOAWAY:
            raise _GoAway
        elif kind == HEADERS:
            self._codec.decode(payload[4:])  # keeps the shared zlib context in step
        # SETTINGS, WINDOW_UPDATE: nothing to do (no flow control on either side).

    async def reset(self, stream: Stream, status: int = RST_CANCEL) -> None:
        stream.local_closed = True
        await self.send(control_frame(RST_STREAM, 0, struct.pack(">II", stream.id, status)))

    async def goaway(self) -> None:
        last = max(self._streams, default=0)
        await self.send(control_frame(GOAWAY, 0, struct.pack(">II", last, 0)))


class _GoAway(Exception):
    pass


__all__ = ["DICTIONARY", "HeaderCodec", "ProtocolError", "Session", "Stream",
           "control_frame", "data_frame"]
