"""A lean fake upstream for benchmarks: OpenAI Chat Completions and Gemini generateContent, canned answers.

Unlike tests/fakes (which record, validate and script every request), this one only reads the body and writes
pre-encoded bytes, so the fake costs as little CPU as possible and the measurement is about the gateway.

    python -m bench.fake_upstream --port 0 [--latency-ms 0] [--chunks 20] [--chunk-delay-ms 0]

`--latency-ms` delays the response headers (a fixed upstream think time); `--chunk-delay-ms` spaces stream chunks
(long-lived streams for the memory scenario). The bound port is printed as `PORT <n>` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from aiohttp import web

TEXT = "The quick brown fox jumps over the lazy dog. "


def openai_body(model: str = "gpt-4o") -> bytes:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT * 4}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52},
    }, separators=(",", ":")).encode()


def openai_chunks(n: int, model: str = "gpt-4o") -> list[bytes]:
    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
        obj = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else []}
        if usage is not None:
            obj["usage"] = usage
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": f"word{i} "}) for i in range(max(0, n - 2))]
    out.append(chunk({}, "stop"))
    out.append(chunk({}, usage={"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n}))
    out.append(b"data: [DONE]\n\n")
    return out


def gemini_body(model: str = "gemini-2.5-flash") -> bytes:
    return json.dumps({
        "candidates": [{"content": {"role": "model", "parts": [{"text": TEXT * 4}]}, "finishReason": "STOP",
                        "index": 0}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 40, "totalTokenCount": 52},
        "modelVersion": model, "responseId": "bench-1",
    }, separators=(",", ":")).encode()


def gemini_chunks(n: int, model: str = "gemini-2.5-flash") -> list[bytes]:
    out = []
    for i in range(n):
        last = i == n - 1
        obj: dict = {"candidates": [{"content": {"role": "model", "parts": [{"text": f"word{i} "}]}, "index": 0}],
                     "modelVersion": model, "responseId": "bench-1"}
        if last:
            obj["candidates"][0]["finishReason"] = "STOP"
            obj["usageMetadata"] = {"promptTokenCount": 12, "candidatesTokenCount": n, "totalTokenCount": 12 + n}
        out.append(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\r\n\r\n")
    return out


def make_app(latency_ms: float = 0.0, chunks: int = 20, chunk_delay_ms: float = 0.0) -> web.Application:
    latency = latency_ms / 1000
    delay = chunk_delay_ms / 1000
    o_body, o_chunks = openai_body(), openai_chunks(chunks)
    g_body, g_chunks = gemini_body(), gemini_chunks(chunks)
    sse_headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}

    async def stream(request: web.Request, parts: list[bytes]) -> web.StreamResponse:
        resp = web.StreamResponse(headers=sse_headers)
        await resp.prepare(request)
        for part in parts:
            if delay:
                await asyncio.sleep(delay)
            await resp.write(part)
        await resp.write_eof()
        return resp

    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if latency:
            await asyncio.sleep(latency)
        if b'"stream":true' in raw or b'"stream": true' in raw:
            return await stream(request, o_chunks)
        return web.Response(body=o_body, content_type="application/json")

    async def gemini(request: web.Request) -> web.StreamResponse:
        await request.read()
        if latency:
            await asyncio.sleep(latency)
        if request.match_info["target"].endswith(":streamGenerateContent"):
            return await stream(request, g_chunks)
        return web.Response(body=g_body, content_type="application/json")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1beta/models/{target}", gemini)
    return app


async def serve(port: int, **kwargs: float) -> None:
    runner = web.AppRunner(make_app(**kwargs), access_log=None)  # type: ignore[arg-type]
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    sys.stdout.write(f"PORT {bound}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.port, latency_ms=args.latency_ms, chunks=args.chunks, chunk_delay_ms=args.chunk_delay_ms))


if __name__ == "__main__":
    main()
