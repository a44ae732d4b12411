"""SSEStream: events as they complete, the already-parsed batch of a chunk, and peeking."""

from __future__ import annotations

from collections.abc import AsyncIterator

from proxyd.protocols.sse import SSEEvent, iter_sse


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_take_ready_returns_the_rest_of_a_chunk() -> None:
    stream = iter_sse(_chunks(b"data: a\n\ndata: b\n\ndata: c", b"\n\n"))
    first = await anext(stream)
    assert first.data == b"a"
    assert [e.data for e in stream.take_ready()] == [b"b"]  # c is not complete yet
    assert stream.take_ready() == []
    stream.push_back(SSEEvent(data=b"peeked"))
    assert [e.data async for e in stream] == [b"peeked", b"c"]


async def test_unterminated_last_event_counts_at_the_end() -> None:
    stream = iter_sse(_chunks(b"event: x\ndata: 1"))
    events = [e async for e in stream]
    assert [(e.event, e.data) for e in events] == [("x", b"1")]
