"""Small Server-Sent Events helpers shared by the fakes and by tests that read SSE bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp

DONE = "[DONE]"


def encode_data(payload: Any) -> bytes:
    """Encode one ``data:`` event; dicts/lists become compact JSON, strings are sent verbatim."""
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


@dataclass(slots=True)
class SSEEvent:
    """One parsed SSE event."""

    data: str
    event: str | None = None
    id: str | None = None

    @property
    def is_done(self) -> bool:
        """True for the OpenAI ``[DONE]`` sentinel."""
        return self.data.strip() == DONE

    def json(self) -> Any:
        """The data field parsed as JSON."""
        return json.loads(self.data)


class SSEParser:
    """Incremental SSE parser: feed bytes, get completed events."""

    def __init__(self) -> None:
        self._buf = ""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, chunk: bytes | str) -> list[SSEEvent]:
        """Feed raw bytes and return the events completed by them."""
        self._buf += chunk.decode() if isinstance(chunk, bytes) else chunk
        self._buf = self._buf.replace("\r\n", "\n").replace("\r", "\n")
        events: list[SSEEvent] = []
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            ev = self._line(line)
            if ev is not None:
                events.append(ev)
        return events

    def flush(self) -> list[SSEEvent]:
        """Return a final event left unterminated at end of stream, if any."""
        events = self.feed("\n\n") if self._buf or self._data else []
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            if not self._data and self._event is None:
                return None
            ev = SSEEvent(data="\n".join(self._data), event=self._event, id=self._id)
            self._data, self._event = [], None
            return ev
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            self._id = value
        return None


def parse_sse(body: bytes | str | Iterable[bytes]) -> list[SSEEvent]:
    """Parse a complete SSE body (or an iterable of byte chunks) into events."""
    parser = SSEParser()
    chunks = [body] if isinstance(body, bytes | str) else body
    events = [ev for chunk in chunks for ev in parser.feed(chunk)]
    return events + parser.flush()


async def iter_sse(resp: aiohttp.ClientResponse) -> AsyncIterator[SSEEvent]:
    """Yield SSE events from an aiohttp client response as they arrive."""
    parser = SSEParser()
    async for chunk in resp.content.iter_any():
        for ev in parser.feed(chunk):
            yield ev
    for ev in parser.flush():
        yield ev
