"""SPDY/3 framing (``kstate.spdy``): the dictionary, header blocks, and a server
session driven by a scripted client over an in-memory pipe; Hypothesis over block
sequences and interleaved data frames."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kstate import spdy

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(10):
            return await coro
    return asyncio.run(bounded())


def test_the_dictionary_is_spdy3s() -> None:
    # 1423 bytes: length-prefixed header words, then the run of common values.
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert b"\x00\x00\x00\x06200 OK\x00\x00\x00\x07version" in spdy.DICTIONARY
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


def test_header_blocks_share_one_context_per_direction() -> None:
    sender, receiver = spdy.HeaderCodec(), spdy.HeaderCodec()
    first = {"streamtype": "error", "port": "8080"}
    second = {"streamtype": "data", "port": "8080", "requestid": "0"}
    assert receiver.decode(sender.encode(first)) == first
    # The second block refers back to the first: only the shared context decodes it.
    block = sender.encode(second)
    assert receiver.decode(block) == second
    with pytest.raises(spdy.ProtocolError):
        spdy.HeaderCodec().decode(block)


def test_header_blocks_need_the_dictionary() -> None:
    block = spdy.HeaderCodec().encode({"streamtype": "stdin"})
    with pytest.raises(zlib.error):
        zlib.decompressobj().decompress(block)


def test_a_garbled_header_block_is_a_protocol_error() -> None:
    with pytest.raises(spdy.ProtocolError):
        spdy.HeaderCodec().decode(b"\x00garbage")


class Pipe:
    """A client on the other end of a :class:`spdy.Session`."""

    def __init__(self) -> None:
        self.to_server = asyncio.StreamReader()
        self.from_server = asyncio.StreamReader()
        self.codec = spdy.HeaderCodec()
        self.session = spdy.Session(self.to_server.readexactly, self._server_write)

    async def _server_write(self, frame: bytes) -> None:
        self.from_server.feed_data(frame)

    def send(self, frame: bytes) -> None:
        self.to_server.feed_data(frame)

    def open(self, stream_id: int, headers: dict[str, str], fin: bool = False) -> None:
        payload = struct.pack(">IIH", stream_id, 0, 0) + self.codec.encode(headers)
        self.send(spdy.control_frame(spdy.SYN_STREAM, spdy.FLAG_FIN if fin else 0, payload))

    async def frame(self) -> tuple[bool, int, int, bytes]:
        """(control?, type or stream id, flags, payload) of the server's next frame."""
        first, second = struct.unpack(">II", await self.from_server.readexactly(8))
        payload = await self.from_server.readexactly(second & 0xFFFFFF)
        if first & 0x80000000:
            return True, first & 0xFFFF, second >> 24, payload
        return False, first, second >> 24, payload


def test_a_session_replies_carries_data_and_half_closes() -> None:
    async def go() -> None:
        pipe = Pipe()
        serving = asyncio.ensure_future(pipe.session.serve())
        pipe.open(1, {"streamtype": "stdin"})
        stream = await pipe.session.accept()
        assert stream is not None and stream.headers == {"streamtype": "stdin"}
        control, kind, _, payload = await pipe.frame()
        assert (control, kind) == (True, spdy.SYN_REPLY)
        assert struct.unpack_from(">I", payload)[0] == 1
        pipe.send(spdy.data_frame(1, b"hello"))
        pipe.send(spdy.data_frame(1, b"", fin=True))
        assert await stream.read() == b"hello"
        assert await stream.read() == b""  # the client half-closed
        await stream.write(b"back")
        assert await pipe.frame() == (False, 1, 0, b"back")
        await stream.close()
        assert await pipe.frame() == (False, 1, spdy.FLAG_FIN, b"")
        # PING is answered with the same id; WINDOW_UPDATE and SETTINGS are ignored.
        pipe.send(spdy.control_frame(spdy.WINDOW_UPDATE, 0, struct.pack(">II", 1, 100)))
        pipe.send(spdy.control_frame(spdy.SETTINGS, 0, struct.pack(">I", 0)))
        pipe.send(spdy.control_frame(spdy.PING, 0, struct.pack(">I", 7)))
        assert await pipe.frame() == (True, spdy.PING, 0, struct.pack(">I", 7))
        pipe.send(spdy.control_frame(spdy.GOAWAY, 0, struct.pack(">II", 1, 0)))
        await serving
        assert await pipe.session.accept() is None
    run(go())


def test_reset_and_disconnect_end_the_streams() -> None:
    async def go() -> None:
        pipe = Pipe()
        serving = asyncio.ensure_future(pipe.session.serve())
        pipe.open(1, {"streamtype": "data"})
        pipe.open(3, {"streamtype": "error"}, fin=True)
        data, error = await pipe.session.accept(), await pipe.session.accept()
        assert data is not None and error is not None
        assert await error.read() == b""  # opened with FIN: nothing will come
        pipe.send(spdy.control_frame(spdy.RST_STREAM, 0, struct.pack(">II", 1, 5)))
        assert await data.read() == b""
        pipe.to_server.feed_eof()  # the client's connection drops mid-session
        await serving
        assert pipe.session.closed
    run(go())


def test_a_frame_of_another_spdy_version_ends_the_session() -> None:
    async def go() -> None:
        pipe = Pipe()
        serving = asyncio.ensure_future(pipe.session.serve())
        pipe.send(struct.pack(">HHI", 0x8002, spdy.SYN_STREAM, 10) + bytes(10))
        await serving  # ends cleanly: no exception escapes to the server
        assert pipe.session.closed
    run(go())


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20)
_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=40)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(_names, _values, max_size=6), min_size=1, max_size=6))
def test_any_sequence_of_header_blocks_round_trips(blocks: list[dict[str, str]]) -> None:
    sender, receiver = spdy.HeaderCodec(), spdy.HeaderCodec()
    for headers in blocks:
        assert receiver.decode(sender.encode(headers)) == headers


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, 3, 5]), st.binary(max_size=300),
                          st.booleans()), max_size=8))
def test_data_frames_reach_their_streams_whole(frames: list[tuple[int, bytes, bool]]
                                               ) -> None:
    async def go() -> None:
        pipe = Pipe()
        serving = asyncio.ensure_future(pipe.session.serve())
        streams = {}
        for stream_id in (1, 3, 5):
            pipe.open(stream_id, {"streamtype": "data", "requestid": str(stream_id)})
            stream = await pipe.session.accept()
            assert stream is not None
            streams[stream_id] = stream
        expected: dict[int, bytes] = {1: b"", 3: b"", 5: b""}
        closed: set[int] = set()
        for stream_id, data, fin in frames:
            pipe.send(spdy.data_frame(stream_id, data, fin=fin))
            if stream_id not in closed:
                expected[stream_id] += data
                if fin:
                    closed.add(stream_id)
        pipe.to_server.feed_eof()
        await serving
        for stream_id, stream in streams.items():
            got = b""
            while chunk := await stream.read():
                got += chunk
            assert got == expected[stream_id]
    run(go())
