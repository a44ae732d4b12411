"""Incremental Server-Sent Events parsing and framing over raw bytes."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from typing import NamedTuple

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


class SSEError(Exception):
    """The upstream stream is not valid SSE (an event larger than the limit)."""


class SSEEvent(NamedTuple):
    """One dispatched event: its `event:` name (None when absent) and its joined `data:` lines.

    A named tuple: immutable like a frozen attrs class, at a third of the construction cost (one per event).
    """

    data: bytes
    event: str | None = None
    id: str | None = None


class SSEParser:
    """Feed bytes as they arrive; get complete events back. Comment lines are dropped."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._buffer = bytearray()
        self._data: list[bytes] = []
        self._event: str | None = None
        self._id: str | None = None
        self._size = 0
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        # On the per-chunk paths, `x.find(b"…") < 0` stands for `b"…" not in x`: CPython 3.11's bytes `in`
        # first tries the needle as an integer and raises and clears a formatted TypeError each time.
        if self._buffer:
            self._buffer += chunk
            if chunk.find(b"\n") < 0:  # still no complete line
                if len(self._buffer) > self._max:
                    raise SSEError(f"SSE line longer than {self._max} bytes")
                return []
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            data = chunk
        if not self._data and self._event is None and data.find(b"\r") < 0:
            return self._blocks(data)
        return self._lines(data)

    def _blocks(self, data: bytes) -> list[SSEEvent]:
        """Between events with only LF endings: one split per blank line, and a block that is one `data: `
        line becomes its event without the per-line steps (the common shape of every provider's streams)."""
        blocks = data.split(b"\n\n")
        tail = blocks.pop()  # after the last blank line: the start of the next event (b"" when none)
        events: list[SSEEvent] = []
        for block in blocks:
            if block[:6] == b"data: " and block.find(b"\n") < 0:
                if len(block) - 6 > self._max:
                    raise SSEError(f"SSE event larger than {self._max} bytes")
                events.append(SSEEvent(block[6:], None, self._id))
                continue
            self._take([*block.split(b"\n"), b""], events)  # anything else, line by line; the blank line ends it
        if tail:
            events.extend(self._lines(tail))
        return events

    def _lines(self, data: bytes) -> list[SSEEvent]:
        # One split per chunk: no per-line copy out of (and memmove inside) the buffer.
        lines = data.split(b"\n")
        tail = lines.pop()  # the incomplete last line (b"" when the chunk ended with a newline)
        events: list[SSEEvent] = []
        for line in lines:
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line:  # the blank line ending an event (inlined: the common case with data lines)
                if self._data:
                    data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                    events.append(SSEEvent(data=data, event=self._event, id=self._id))
                    self._data, self._event, self._size = [], None, 0
                    continue
                if self._event is None:
                    continue
            elif line[:5] == b"data:" and line[5:6] == b" ":
                self._size += len(line) - 6
                if self._size > self._max:
                    raise SSEError(f"SSE event larger than {self._max} bytes")
                self._data.append(line[6:])
                continue
            event = self._line(line)
            if event is not None:
                events.append(event)
        if tail:
            self._buffer += tail
            if len(self._buffer) > self._max:
                raise SSEError(f"SSE line longer than {self._max} bytes")
        return events

    def close(self) -> list[SSEEvent]:
        """Flush at end of stream: a final event without its blank line still counts."""
        events: list[SSEEvent] = []
        lines = [bytes(self._buffer).rstrip(b"\r")] if self._buffer else []
        self._buffer.clear()
        self._take([*lines, b""], events)
        return events

    def _take(self, lines: list[bytes], events: list[SSEEvent]) -> None:
        """Run whole lines through the parser, adding the events they complete to `events`."""
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            if not self._data and self._event is None:
                return None
            data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
            event = SSEEvent(data=data, event=self._event, id=self._id)
            self._data, self._event, self._size = [], None, 0
            return event
        if line[:5] == b"data:":  # the common line first
            value = line[6:] if line[5:6] == b" " else line[5:]
            self._size += len(value)
            if self._size > self._max:
                raise SSEError(f"SSE event larger than {self._max} bytes")
            self._data.append(value)
            return None
        if line[:1] == b":":
            return None
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)  # `data` without a colon: an empty data line
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            self._id = value.decode("utf-8", "replace")
        return None


class SSEStream:
    """Events from an async byte stream, as soon as each is complete.

    Besides iterating, a consumer may `take_ready()` the events already parsed from the bytes received so far
    (so one upstream chunk's events can be written to the client at once), and `push_back()` an event it
    peeked at.
    """

    def __init__(self, chunks: AsyncIterator[bytes], max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._chunks = chunks
        self._parser = SSEParser(max_event_bytes)
        self._ready: collections.deque[SSEEvent] = collections.deque()
        self._ended = False

    def __aiter__(self) -> SSEStream:
        return self

    async def __anext__(self) -> SSEEvent:
        while not self._ready:
            if self._ended:
                raise StopAsyncIteration
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._ended = True
                self._ready.extend(self._parser.close())
                continue
            self._ready.extend(self._parser.feed(chunk))
        return self._ready.popleft()

    def take_ready(self) -> list[SSEEvent]:
        """The events parsed and not yet returned (without waiting for more bytes)."""
        ready = list(self._ready)
        self._ready.clear()
        return ready

    def push_back(self, event: SSEEvent) -> None:
        self._ready.appendleft(event)

    async def aclose(self) -> None:
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def iter_sse(chunks: AsyncIterator[bytes], max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> SSEStream:
    """Events from an async byte stream, yielded as soon as each is complete."""
    return SSEStream(chunks, max_event_bytes)


def frame(data: bytes, event: str | None = None) -> bytes:
    """Encode one SSE event (multi-line data split into several `data:` lines)."""
    if data.find(b"\n") < 0:
        if event is None:
            return b"data: " + data + b"\n\n"
        return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
    parts: list[bytes] = []
    if event is not None:
        parts.append(b"event: " + event.encode() + b"\n")
    for line in data.split(b"\n"):
        parts.append(b"data: " + line + b"\n")
    parts.append(b"\n")
    return b"".join(parts)


KEEPALIVE_COMMENT = b": keep-alive\n\n"
