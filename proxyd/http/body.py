"""Request bodies: bounded reads (counted after decompression) and JSON parsing with clear errors."""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import StreamReader, web

from proxyd.http.errors import ProxyError
from proxyd.protocols.jsonfast import orjson_exact


async def read_stream(content: StreamReader, limit: int, *, truncate: bool = False) -> bytes | None:
    """All of `content` (StreamReader.read(n) returns only what has arrived so far), at most `limit` bytes.

    Past `limit` the answer is None, or with `truncate` the first `limit` bytes. The one bounded-read loop for
    client request bodies and upstream answers alike.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in content.iter_any():
        size += len(chunk)
        if size > limit:
            if not truncate:
                return None
            chunks.append(chunk[: len(chunk) - (size - limit)])
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def read_limited(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None as soon as it (or its declared length) exceeds `limit` bytes."""
    declared = request.content_length
    if declared is not None:
        if declared > limit:
            return None
        if not request.headers.get("Content-Encoding"):
            return await request.read()  # the length is known and fits: aiohttp reads exactly that much
    return await read_stream(request.content, limit)


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read the whole body, refusing with 413 once it exceeds `limit` bytes."""
    body = await read_limited(request, limit)
    if body is None:
        raise ProxyError(413, f"request body exceeds the limit of {limit} bytes", type="invalid_request_error",
                         code="request_too_large")
    return body


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Parse a JSON object body or fail with a 400 that says what is wrong."""
    if not raw.strip():
        raise ProxyError(400, "request body is empty; a JSON object is required", type="invalid_request_error")
    if orjson_exact(raw):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = _slow_parse(raw)
    else:  # integers wider than 64 bits stay exact, as the reference's raw-JSON handling keeps their digits
        data = _slow_parse(raw)
    if not isinstance(data, dict):
        raise ProxyError(400, "request body must be a JSON object", type="invalid_request_error")
    return data


def _slow_parse(raw: bytes) -> Any:
    """The stdlib parser: it accepts what orjson refuses (NaN), keeps integers beyond 64 bits exact (orjson
    turns them into floats) and words errors precisely."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise ProxyError(400, "request body is not UTF-8 JSON", type="invalid_request_error") from None
    except json.JSONDecodeError as exc:
        raise ProxyError(400, f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                         type="invalid_request_error") from None
