"""`nonstream-keepalive-interval`: blank lines while a non-streaming answer is being prepared (api-surface §6.4).

Applies to non-streaming legacy completions, Claude messages, Responses and Gemini generateContent, never to
chat completions or token counts. Once a newline went out the status is 200; a later error is written as the
client protocol's error JSON after the newlines.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from proxyd.http.errors import ProxyError
from proxyd.pipeline.exchange import Exchange
from proxyd.protocols.base import WireProtocol

ELIGIBLE = frozenset({WireProtocol.OPENAI_COMPLETIONS, WireProtocol.CLAUDE, WireProtocol.OPENAI_RESPONSES,
                      WireProtocol.GEMINI})


def applies(exchange: Exchange) -> bool:
    return exchange.protocol in ELIGIBLE and not exchange.count


async def with_keepalive(exchange: Exchange, answer: Coroutine[Any, Any, web.StreamResponse],
                         interval: float) -> web.StreamResponse:
    """Await `answer`, writing `\\n` every `interval` seconds once it is known to be a non-streaming request."""
    task = asyncio.ensure_future(answer)
    early: web.StreamResponse | None = None
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                break
            if exchange.stream or not exchange.model:
                continue  # streams have their own keep-alives; before model-route nothing is known yet
            if early is None:
                early = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
                await early.prepare(exchange.request)
            await early.write(b"\n")
    except BaseException:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
    if early is None:
        return task.result()
    try:
        result = task.result()
    except ProxyError as error:
        result = error.response(exchange.error_family)
    body = result.body if isinstance(result, web.Response) else None
    if isinstance(body, bytes | bytearray):
        await early.write(bytes(body))
    await early.write_eof()
    return early
