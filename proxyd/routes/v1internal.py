"""`POST /v1internal:{method}`: the Gemini CLI's Code Assist protocol, so the Gemini CLI can point at proxyd.

Not behind api-key auth; allowed only from loopback (127.0.0.0/8 and ::1, DECISIONS 5; the client address is
the socket peer unless a `trusted-proxies` peer forwarded it, DECISIONS 9). Anything else: 403.

* `generateContent` / `streamGenerateContent`: the body is the CLI envelope `{"model", "project", "request"}`;
  the inner request runs through the pipeline as a Gemini client request for the envelope's model (so any
  upstream serves it: Gemini natively, Claude / OpenAI-compatible / Codex translated), and every answer is
  wrapped back as `{"response": <GenerateContentResponse>}`. The stream's SSE headers go out at once, so
  every error of a stream (even a bad body or an unknown model) arrives in-stream as
  `event: error\\ndata: <error body>` with HTTP 200, as the reference does.
* `countTokens`: `{"request": {"model": "models/…", "contents": […]}}` → `{"totalTokens": N, …}`, counted
  by the pipeline like Gemini's `:countTokens` (forwarded to Gemini/Claude upstreams, estimated otherwise).
* The account methods the CLI calls before it generates (`loadCodeAssist`, `onboardUser`, and the
  best-effort `listExperiments`, `retrieveUserQuota`, metrics…) are answered locally: proxyd holds the
  upstream credentials, so the CLI's own Google account is not needed. `loadCodeAssist` reports a current
  tier and a project (the one the CLI asked for, else `proxyd`), which makes the CLI skip onboarding;
  `onboardUser` reports a finished operation; other methods answer `{}`. The reference instead proxies these
  to cloudcode-pa.googleapis.com with the client's headers.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web

from proxyd.http.body import parse_json_object, read_body
from proxyd.http.client_address import client_address, is_local
from proxyd.http.errors import ErrorFamily, ProxyError, UpstreamError
from proxyd.keys import RUNTIME
from proxyd.pipeline.exchange import Exchange
from proxyd.pipeline.stream_rewrite import SSE_HEADERS, StreamRewriteStage, mid_stream_failure
from proxyd.protocols import gemini_cli
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.codec import CodecError
from proxyd.protocols.sse import SSEError, frame
from proxyd.routes.custom_pipeline import exchange_for, pipeline_with

LOCAL_ONLY = "CLI reply only allow local access"
GENERATE = "generateContent"
STREAM = "streamGenerateContent"
COUNT = "countTokens"
DEFAULT_PROJECT = "proxyd"
_TYPE_PREFIX = "type.googleapis.com/google.internal.cloud.code.v1internal."
_TIER = {
    "id": "standard-tier",
    "name": "Gemini Code Assist",
    "description": "Served by proxyd",
    "userDefinedCloudaicompanionProject": True,
}


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


class LoopbackAuthStage:
    """Stands in for the api-key check: `/v1internal` is guarded by the loopback rule in the handler."""

    name = "auth"

    async def run(self, exchange: Exchange) -> None:
        exchange.client_key = None


class CliWholeStage:
    """Writer for `generateContent`: the normal non-streaming answer, wrapped as `{"response": …}`."""

    name = "stream-rewrite"

    def __init__(self) -> None:
        self._inner = StreamRewriteStage()

    async def run(self, exchange: Exchange) -> None:
        await self._inner.run(exchange)
        response = exchange.response
        if isinstance(response, web.Response) and response.status == 200 and isinstance(response.body, bytes):
            try:
                data = json.loads(response.body)
            except ValueError:
                return
            if isinstance(data, dict):
                exchange.response = web.Response(status=200, body=_json(gemini_cli.wrap_response(data)),
                                                 content_type="application/json")


class CliStreamStage:
    """Writer for `streamGenerateContent`: Gemini SSE chunks wrapped, onto a response already prepared."""

    name = "stream-rewrite"

    def __init__(self, response: web.StreamResponse) -> None:
        self._response = response

    async def run(self, exchange: Exchange) -> None:
        assert exchange.translation is not None and exchange.chosen is not None
        rewriter = exchange.translation.rewriter_for(exchange.chosen.provider.protocol)
        exchange.response = self._response
        try:
            if exchange.events is not None:
                try:
                    async for event in exchange.events:
                        out = rewriter.event(event)
                        if out:
                            await self._response.write(gemini_cli.wrap_sse(out))
                except (aiohttp.ClientError, SSEError, TimeoutError, ValueError) as exc:
                    exchange.log.warning("upstream stream failed mid-way", error=str(exc))
                    exchange.failed_mid_stream = True
                    await self._response.write(rewriter.error_frame(mid_stream_failure(exc)))
                    return
            tail = rewriter.done()
            if tail:
                await self._response.write(gemini_cli.wrap_sse(tail))
        finally:
            exchange.usage = rewriter.usage


def _error_event(body: bytes) -> bytes:
    return frame(body.strip() or b"{}", "error")


def _unwrap(envelope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    try:
        inner = gemini_cli.unwrap_request(envelope)
    except CodecError as exc:
        raise ProxyError(400, str(exc), type="invalid_request_error", param=exc.field or None) from None
    model = gemini_cli.request_model(envelope).strip()
    if not model:
        raise ProxyError(400, "missing required field: model", type="invalid_request_error", param="model")
    return model.removeprefix("models/"), inner


class V1InternalHandlers:
    """Handlers of `/v1internal:{method}`."""

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if not is_local(client_address(request)):
            raise ProxyError(403, LOCAL_ONLY, type="forbidden")
        method = request.match_info["method"]
        if method == STREAM:
            return await self._stream(request)
        envelope = await self._body(request)
        if method == GENERATE:
            model, inner = _unwrap(envelope)
            exchange = exchange_for(request, WireProtocol.GEMINI, inner, path_model=model, stream=False)
            return await pipeline_with(request.app, LoopbackAuthStage(), CliWholeStage()).run(exchange)
        if method == COUNT:
            return await self._count(request, envelope)
        return web.json_response(self._local_answer(method, envelope))

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        limit = request.app[RUNTIME].current.config.request_body_limit_mb * 1024 * 1024
        return parse_json_object(await read_body(request, limit))

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers=SSE_HEADERS)
        await response.prepare(request)
        try:
            model, inner = _unwrap(await self._body(request))
            exchange = exchange_for(request, WireProtocol.GEMINI, inner, path_model=model, stream=True)
            result = await pipeline_with(request.app, LoopbackAuthStage(), CliStreamStage(response)).run(exchange)
            if result is not response:  # an upstream failure before the first chunk
                body = result.body if isinstance(result, web.Response) and isinstance(result.body, bytes) else b""
                await response.write(_error_event(body))
        except ProxyError as exc:
            await response.write(_error_event(_json(exc.body(ErrorFamily.GEMINI))))
        except UpstreamError as exc:
            await response.write(_error_event(_json(exc.to_proxy_error().body(ErrorFamily.GEMINI))))
        await response.write_eof()
        return response

    @staticmethod
    async def _count(request: web.Request, envelope: dict[str, Any]) -> web.StreamResponse:
        inner = envelope.get("request")
        if not isinstance(inner, dict):
            raise ProxyError(400, "request: must be an object holding the countTokens request",
                             type="invalid_request_error", param="request")
        model = inner.get("model") if isinstance(inner.get("model"), str) else gemini_cli.request_model(envelope)
        model = model.strip().removeprefix("models/")
        if not model:
            raise ProxyError(400, "missing required field: request.model", type="invalid_request_error",
                             param="request.model")
        body = {k: v for k, v in inner.items() if k != "model"}
        exchange = exchange_for(request, WireProtocol.GEMINI, body, path_model=model, stream=False, count=True)
        return await pipeline_with(request.app, LoopbackAuthStage()).run(exchange)

    @staticmethod
    def _local_answer(method: str, body: dict[str, Any]) -> dict[str, Any]:
        requested = body.get("cloudaicompanionProject") or body.get("project")
        project = requested if isinstance(requested, str) and requested else DEFAULT_PROJECT
        if method == "loadCodeAssist":
            return {"currentTier": dict(_TIER), "allowedTiers": [{**_TIER, "isDefault": True}],
                    "cloudaicompanionProject": project, "gcpManaged": False}
        if method == "onboardUser":
            return {"name": "operations/proxyd-onboard", "done": True, "response": {
                "@type": _TYPE_PREFIX + "OnboardUserResponse",
                "cloudaicompanionProject": {"id": project, "name": project}}}
        if method == "listExperiments":
            return {"experimentIds": [], "flags": []}
        if method == "retrieveUserQuota":
            return {"buckets": []}
        return {}


def add_v1internal_routes(app: web.Application) -> None:
    h = V1InternalHandlers()
    app.router.add_post("/v1internal:{method}", h.dispatch)
