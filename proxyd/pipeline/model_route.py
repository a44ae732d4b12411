"""model-route stage: the client's model name → ordered candidates (credential, upstream model, provider)."""

from __future__ import annotations

from typing import Any

from proxyd.http.errors import ProxyError
from proxyd.models.registry import Route
from proxyd.pipeline.exchange import Candidate, Exchange
from proxyd.protocols.base import WireProtocol
from proxyd.providers.registry import provider_for
from proxyd.thinking import parse_suffix, resolve_auto_model, split_model_suffix


def wants_stream(protocol: WireProtocol, body: dict[str, Any]) -> bool:
    """The reference's per-endpoint stream flag rules."""
    if protocol is WireProtocol.CLAUDE:
        return "stream" in body and body["stream"] is not False
    return body.get("stream") is True


def requested_model(exchange: Exchange, body: dict[str, Any]) -> str:
    if exchange.path_model is not None:
        return exchange.path_model
    if "model" not in body or body["model"] is None or body["model"] == "":
        raise ProxyError(400, "missing required field: model", type="invalid_request_error", param="model")
    model = body["model"]
    if not isinstance(model, str):
        raise ProxyError(400, "model: must be a string", type="invalid_request_error", param="model")
    return model.strip()


class ModelRouteStage:
    """Resolves aliases, prefixes and pools through the registry; orders credentials by the routing strategy.

    `name(value)` thinking suffixes are split off for routing (api-surface §4.1): the base name routes, the
    suffix becomes the request's thinking setting; a suffixed name that is itself registered routes as is.
    `auto` picks the newest registered model.
    """

    name = "model-route"

    @staticmethod
    def _resolve(exchange: Exchange) -> list[Route]:
        registry = exchange.runtime.registry
        model = exchange.model
        base, suffix = split_model_suffix(model)
        if base == "auto":
            resolved = resolve_auto_model(model, [(m.id, m.created) for m in registry.list_models()])
            base, suffix = split_model_suffix(resolved)
        routes = registry.routes(base)
        if routes:
            exchange.route_model = base
            exchange.thinking_suffix = parse_suffix(suffix) if suffix is not None else None
            return routes
        exchange.route_model = model
        return registry.routes(model)

    async def run(self, exchange: Exchange) -> None:
        body = await exchange.json_body()
        exchange.model = requested_model(exchange, body)
        if exchange.forced_stream is not None:
            exchange.stream = exchange.forced_stream
        else:
            exchange.stream = wants_stream(exchange.protocol, body)
        runtime = exchange.runtime
        routes = self._resolve(exchange)
        if not routes:
            raise ProxyError(404, f"unknown provider for model {exchange.model}", type="invalid_request_error",
                             code="model_not_found", param="model")
        ordered = runtime.selector.order(exchange.route_model, routes)
        exchange.candidates = [
            Candidate(route=route, upstream_model=upstream, provider=provider_for(route.credential.kind))
            for route in ordered
            for upstream in runtime.pools.order(route.credential.id, exchange.route_model, route.upstream_models)
        ]
        exchange.bind_log(model=exchange.model, stream=exchange.stream)
