"""`POST /v1/responses/compact`: OpenAI's conversation compaction, forwarded non-streaming (api-surface §7.7).

* `stream` literally `true` → 400 `Streaming not supported for compact responses` (nothing is sent upstream);
  any other `stream` value is removed before forwarding.
* Only Codex (`{base-url}/responses/compact`) and OpenAI-compatible providers (`{base-url}/responses/compact`,
  the Responses body as the client sent it) can compact. Candidates of other providers are skipped; when none
  is left the answer is 501 `/responses/compact not supported` (routing.md §1.2).
* The upstream JSON is returned as it is (only a top-level `model` is renamed back to the client's id);
  upstream errors keep their status and body, as on every same-protocol route.

It runs the normal pipeline (auth, model routing with credential rotation, retries, cooldowns, request
records) with two stages of its own: the dispatch attempt posts to the compact endpoint, and the writer
returns the JSON body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from proxyd.http.body import parse_json_object, read_body
from proxyd.http.errors import ProxyError, UpstreamError
from proxyd.keys import RUNTIME
from proxyd.pipeline.auth import authenticate
from proxyd.pipeline.dispatch import DispatchStage, timeouts_of
from proxyd.pipeline.exchange import Candidate, Exchange
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.rewrite import rename_model
from proxyd.providers.base import MAX_UPSTREAM_BODY, UpstreamRequest, json_bytes, read_capped, send_for
from proxyd.providers.codex import CodexProvider
from proxyd.providers.codex_collab import MODEL_LISTS, prepare_request, restore_text, restores_namespace
from proxyd.providers.openai_compat import OpenAICompatProvider
from proxyd.routes.custom_pipeline import exchange_for, pipeline_with

COMPACT_KINDS = frozenset({"codex", "openai-compatibility"})
NOT_SUPPORTED = "/responses/compact not supported"
STREAM_REFUSED = "Streaming not supported for compact responses"
# Fields the Codex backend refuses on the Responses path (routing.md §2.6): gone from compact calls too.
_CODEX_DROPPED = ("previous_response_id", "prompt_cache_retention", "safety_identifier")


def compact_request(candidate: Candidate, body: Mapping[str, Any], client_headers: Mapping[str, str],
                    model_overrides: Callable[[], str] = lambda: "") -> UpstreamRequest:
    """The upstream compact call for a Codex or OpenAI-compatible candidate (Codex: collaboration rules of
    providers/codex_collab.py, `model_overrides` giving the spawn_agent model list)."""
    credential = candidate.route.credential
    payload = {k: v for k, v in body.items() if k != "stream"}
    payload["model"] = candidate.upstream_model
    provider = candidate.provider
    if isinstance(provider, CodexProvider):
        payload = prepare_request(payload, client_headers, model_overrides)
        for name in _CODEX_DROPPED:
            payload.pop(name, None)
        payload.setdefault("instructions", "")
        base = provider.build_request(credential, candidate.upstream_model, {}, stream=True,
                                      client_headers=client_headers)
    elif isinstance(provider, OpenAICompatProvider):
        base = provider.build_request(credential, candidate.upstream_model, {}, stream=False,
                                      client_headers=client_headers)
    else:
        raise ProxyError(501, NOT_SUPPORTED, type="server_error", code="internal_server_error")
    headers = {**base.headers, "Accept": "application/json"}
    return UpstreamRequest(method="POST", url=f"{credential.base_url}/responses/compact", headers=headers,
                           body=json_bytes(payload), proxy_url=base.proxy_url)


class CompactTranslateStage:
    """Keeps only candidates whose provider has a compact endpoint (no body translation: Responses in, out)."""

    name = "translate"

    async def run(self, exchange: Exchange) -> None:
        supported = [c for c in exchange.candidates if c.provider.kind in COMPACT_KINDS]
        if exchange.candidates and not supported:
            raise ProxyError(501, NOT_SUPPORTED, type="server_error", code="internal_server_error")
        exchange.candidates = supported


class CompactDispatchStage(DispatchStage):
    """The shared dispatch loop (rotation, retries, cooldowns) with compact calls as its attempts."""

    async def _attempt(self, exchange: Exchange, candidate: Candidate) -> None:
        body = await exchange.json_body()
        registry = exchange.runtime.registry
        request = compact_request(candidate, body, exchange.request.headers,
                                  lambda: MODEL_LISTS.text_for(registry))
        exchange.upstream = await send_for(candidate.provider, exchange.session, request, timeouts_of(exchange))
        try:  # read whole here: a body cut short is this attempt's failure and moves on
            exchange.upstream_body = await read_capped(exchange.upstream.response, MAX_UPSTREAM_BODY)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(0, f"upstream body read failed: {exc}".encode()) from None


class CompactWriteStage:
    """The upstream's JSON answer, as it is."""

    name = "stream-rewrite"

    async def run(self, exchange: Exchange) -> None:
        raw = exchange.upstream_body or b""
        if not raw.strip():
            raise UpstreamError(502, b"upstream answered an empty compact body")
        if restores_namespace(await exchange.json_body()):
            raw = restore_text(raw)
        exchange.response = web.Response(status=200, body=rename_model(raw, json.dumps(exchange.model).encode()),
                                         content_type="application/json")


async def responses_compact(request: web.Request) -> web.StreamResponse:
    """The handler: auth and body checks, then the compact pipeline."""
    runtime = request.app[RUNTIME].current
    authenticate(request, runtime.api_keys)
    body = parse_json_object(await read_body(request, runtime.config.request_body_limit_mb * 1024 * 1024))
    if body.get("stream") is True:
        raise ProxyError(400, STREAM_REFUSED, type="invalid_request_error")
    body.pop("stream", None)
    exchange = exchange_for(request, WireProtocol.OPENAI_RESPONSES, body, stream=False)
    exchange.log = exchange.log.bind(endpoint="compact")
    pipeline = pipeline_with(request.app, CompactTranslateStage(), CompactDispatchStage(), CompactWriteStage())
    return await pipeline.run(exchange)


def add_compact_routes(app: web.Application) -> None:
    app.router.add_post("/v1/responses/compact", responses_compact)
