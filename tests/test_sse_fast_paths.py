"""The SSE parser's and framer's fast paths give exactly what the straightforward line-by-line version gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxyd.protocols.sse import SSEError, SSEEvent, SSEParser, frame


class ReferenceParser:
    """The original line-at-a-time parser, kept as the oracle."""

    def __init__(self, max_event_bytes: int = 16 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._data: list[bytes] = []
        self._event: str | None = None
        self._id: str | None = None
        self._size = 0
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            nl = self._buffer.find(b"\n")
            if nl < 0:
                if len(self._buffer) > self._max:
                    raise SSEError("line")
                return events
            line = bytes(self._buffer[:nl])
            del self._buffer[: nl + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            event = self._line(line)
            if event is not None:
                events.append(event)

    def close(self) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if self._buffer:
            line = bytes(self._buffer).rstrip(b"\r")
            self._buffer.clear()
            event = self._line(line)
            if event is not None:
                events.append(event)
        event = self._line(b"")
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            if not self._data and self._event is None:
                return None
            event = SSEEvent(data=b"\n".join(self._data), event=self._event, id=self._id)
            self._data, self._event, self._size = [], None, 0
            return event
        if line.startswith(b":"):
            return None
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._size += len(value)
            if self._size > self._max:
                raise SSEError("event")
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            self._id = value.decode("utf-8", "replace")
        return None


def run(parser: SSEParser | ReferenceParser, chunks: list[bytes]) -> list[SSEEvent] | str:
    out: list[SSEEvent] = []
    try:
        for chunk in chunks:
            out.extend(parser.feed(chunk))
        out.extend(parser.close())
    except SSEError:
        return [*out, "error"]  # type: ignore[list-item]
    return out


LINES = st.sampled_from([b"data: {\"a\":1}", b"data:x", b"data", b"data:", b"data:  two", b"event: ping", b"event:e",
                         b"id: 7", b": comment", b":", b"retry: 5", b"", b"", b"weird line", b"data: \xff\xfe",
                         b"event", b"id"])
ENDINGS = st.sampled_from([b"\n", b"\r\n", b"\n", b"\r"])


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[bytes], int]:
    text = b"".join(draw(LINES) + draw(ENDINGS) for _ in range(draw(st.integers(0, 25))))
    text += draw(st.sampled_from([b"", b"data: tail", b"data: tail\r"]))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=8)))
    chunks, start = [], 0
    for cut in [*cuts, len(text)]:
        chunks.append(text[start:cut])
        start = cut
    return chunks, draw(st.sampled_from([16 * 1024 * 1024, 8, 20]))


@settings(max_examples=600, deadline=None)
@given(streams())
def test_parser_matches_the_line_by_line_reference(case: tuple[list[bytes], int]) -> None:
    chunks, limit = case
    assert run(SSEParser(limit), chunks) == run(ReferenceParser(limit), chunks)


def test_long_incomplete_line_is_refused_across_chunks() -> None:
    parser = SSEParser(max_event_bytes=10)
    assert parser.feed(b"data: 1234") == []
    with pytest.raises(SSEError):
        parser.feed(b"5678")


def test_one_chunk_many_events() -> None:
    chunk = b"".join(b"data: {\"i\":%d}\n\n" % i for i in range(50))
    events = SSEParser().feed(chunk)
    assert [e.data for e in events] == [b'{"i":%d}' % i for i in range(50)]


def reference_frame(data: bytes, event: str | None = None) -> bytes:
    parts = [b"event: " + event.encode() + b"\n"] if event is not None else []
    parts += [b"data: " + line + b"\n" for line in data.split(b"\n")]
    return b"".join([*parts, b"\n"])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.one_of(st.none(), st.sampled_from(["message_start", "ping", "é"])))
def test_frame_matches_reference(data: bytes, event: str | None) -> None:
    assert frame(data, event) == reference_frame(data, event)
