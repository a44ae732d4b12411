"""A server that answers every request with fixed bytes: lets official SDKs judge what an encoder produced."""

from __future__ import annotations

from types import TracebackType

from aiohttp import web


class ReplayServer:
    """Answer any method/path with `body` (a list = chunks written and flushed one by one).

    `async with ReplayServer(sse_bytes) as srv:` then point an SDK at `srv.url` (add `/v1` as the SDK needs).
    `srv.requests` records (method, path, json-or-None) of what the SDK sent.
    """

    def __init__(self, body: bytes | list[bytes], *, content_type: str = "text/event-stream", status: int = 200,
                 headers: dict[str, str] | None = None) -> None:
        self.chunks = [body] if isinstance(body, bytes) else list(body)
        self.content_type = content_type
        self.status = status
        self.headers = dict(headers or {})
        self.requests: list[tuple[str, str, object]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            parsed: object = await request.json() if raw else None
        except ValueError:
            parsed = None
        self.requests.append((request.method, request.path, parsed))
        response = web.StreamResponse(status=self.status,
                                      headers={"Content-Type": self.content_type, **self.headers})
        await response.prepare(request)
        for chunk in self.chunks:
            await response.write(chunk)
        await response.write_eof()
        return response

    async def __aenter__(self) -> ReplayServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
