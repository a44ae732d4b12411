"""The JSON view of the config served by ``GET /v0/management/config`` (§1.8).

Shaped like the reference's Go encoding: struct field order, its ``omitempty`` rules, ``null`` for empty lists,
map keys sorted. ``host``, ``port``, ``auth-dir`` and ``remote-management`` are left out, and so are proxyd's own
keys and unknown keys (the reference has no such fields).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from proxyd.config import (
    Ampcode,
    ApiKeyEntry,
    ClaudeCloak,
    ClaudeKey,
    CodexKey,
    Config,
    GeminiKey,
    ModelAlias,
    OAuthModelAlias,
    OpenAICompatibility,
    Payload,
    PayloadFilterRule,
    PayloadModel,
    PayloadRule,
    RequestScopedErrorRule,
    VertexKey,
)

__all__ = ["config_json"]

T = TypeVar("T")
JSON = dict[str, Any]


def _list(items: Iterable[T], fn: Callable[[T], Any] | None = None) -> list[Any] | None:
    out = [fn(x) if fn is not None else x for x in items]
    return out or None


def _sorted_map(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in sorted(m)}


def _put_nonempty(out: JSON, key: str, value: Any) -> None:
    """``omitempty``: skip zero values (0, "", False, empty list/map, None)."""
    if value:
        out[key] = value


def _model(m: ModelAlias) -> JSON:
    return {"name": m.name, "alias": m.alias}


def _listed_models(models: tuple[ModelAlias, ...] | None) -> list[JSON] | None:
    """`null` for an absent `models`, `[]` for an empty list (Go's nil and empty slices)."""
    return None if models is None else [_model(m) for m in models]


def _scoped_rule(r: RequestScopedErrorRule) -> JSON:
    out: JSON = {}
    _put_nonempty(out, "status", r.status)
    _put_nonempty(out, "match", list(r.match))
    _put_nonempty(out, "match-regexr", list(r.match_regexr))
    _put_nonempty(out, "action", r.action)
    return out


def _routing_extras(out: JSON, weight: int | None, rules: tuple[RequestScopedErrorRule, ...] = ()) -> JSON:
    """Newer-build keys (`weight`, `request-scoped-errors`), shown only when set (1 is the default weight)."""
    if weight is not None and weight != 1:
        out["weight"] = weight
    _put_nonempty(out, "request-scoped-errors", _list(rules, _scoped_rule))
    return out


def _gemini(k: GeminiKey) -> JSON:
    out: JSON = {"api-key": k.api_key}
    _put_nonempty(out, "priority", k.priority)
    _put_nonempty(out, "prefix", k.prefix)
    _put_nonempty(out, "base-url", k.base_url)
    _put_nonempty(out, "proxy-url", k.proxy_url)
    _put_nonempty(out, "models", _list(k.models, _model))
    _put_nonempty(out, "headers", _sorted_map(k.headers))
    _put_nonempty(out, "excluded-models", list(k.excluded_models))
    return _routing_extras(out, k.weight, k.request_scoped_errors)


def _cloak(c: ClaudeCloak) -> JSON:
    out: JSON = {}
    _put_nonempty(out, "mode", c.mode)
    _put_nonempty(out, "strict-mode", c.strict_mode)
    _put_nonempty(out, "sensitive-words", list(c.sensitive_words))
    if c.cache_user_id is not None:
        out["cache-user-id"] = c.cache_user_id
    return out


def _claude(k: ClaudeKey) -> JSON:
    out: JSON = {"api-key": k.api_key}
    _put_nonempty(out, "priority", k.priority)
    _put_nonempty(out, "prefix", k.prefix)
    out["base-url"] = k.base_url
    out["proxy-url"] = k.proxy_url
    out["models"] = _listed_models(k.models)
    _put_nonempty(out, "headers", _sorted_map(k.headers))
    _put_nonempty(out, "excluded-models", list(k.excluded_models))
    if k.cloak is not None:
        out["cloak"] = _cloak(k.cloak)
    return _routing_extras(out, k.weight, k.request_scoped_errors)


def _codex(k: CodexKey) -> JSON:
    out: JSON = {"api-key": k.api_key}
    _put_nonempty(out, "priority", k.priority)
    _put_nonempty(out, "prefix", k.prefix)
    out["base-url"] = k.base_url
    _put_nonempty(out, "websockets", k.websockets)
    out["proxy-url"] = k.proxy_url
    out["models"] = _listed_models(k.models)
    _put_nonempty(out, "headers", _sorted_map(k.headers))
    _put_nonempty(out, "excluded-models", list(k.excluded_models))
    return _routing_extras(out, k.weight, k.request_scoped_errors)


def _key_entry(e: ApiKeyEntry) -> JSON:
    out: JSON = {"api-key": e.api_key}
    _put_nonempty(out, "proxy-url", e.proxy_url)
    return _routing_extras(out, e.weight)


def _openai(p: OpenAICompatibility) -> JSON:
    out: JSON = {"name": p.name}
    _put_nonempty(out, "priority", p.priority)
    _put_nonempty(out, "prefix", p.prefix)
    out["base-url"] = p.base_url
    _put_nonempty(out, "api-key-entries", _list(p.api_key_entries, _key_entry))
    out["models"] = _listed_models(p.models)
    _put_nonempty(out, "headers", _sorted_map(p.headers))
    return _routing_extras(out, None, p.request_scoped_errors)


def _vertex(k: VertexKey) -> JSON:
    out: JSON = {"api-key": k.api_key}
    _put_nonempty(out, "priority", k.priority)
    _put_nonempty(out, "prefix", k.prefix)
    _put_nonempty(out, "base-url", k.base_url)
    _put_nonempty(out, "proxy-url", k.proxy_url)
    _put_nonempty(out, "headers", _sorted_map(k.headers))
    _put_nonempty(out, "models", _list(k.models, _model))
    _put_nonempty(out, "excluded-models", list(k.excluded_models))
    return _routing_extras(out, k.weight)


def _ampcode(a: Ampcode) -> JSON:
    out: JSON = {"upstream-url": a.upstream_url, "upstream-api-key": a.upstream_api_key}
    _put_nonempty(out, "upstream-api-keys", _list(
        a.upstream_api_keys, lambda e: {"upstream-api-key": e.upstream_api_key, "api-keys": _list(e.api_keys)}))
    out["restrict-management-to-localhost"] = a.restrict_management_to_localhost

    def mapping(m: Any) -> JSON:
        item: JSON = {"from": m.from_, "to": m.to}
        _put_nonempty(item, "regex", m.regex)
        return item

    out["model-mappings"] = _list(a.model_mappings, mapping)
    out["force-model-mappings"] = a.force_model_mappings
    return out


def _alias(a: OAuthModelAlias) -> JSON:
    out: JSON = {"name": a.name, "alias": a.alias}
    _put_nonempty(out, "fork", a.fork)
    return out


def _payload_model(m: PayloadModel) -> JSON:
    return {"name": m.name, "protocol": m.protocol}


def _payload_rule(r: PayloadRule) -> JSON:
    return {"models": _list(r.models, _payload_model), "params": _sorted_map(r.params) or None}


def _filter_rule(r: PayloadFilterRule) -> JSON:
    return {"models": _list(r.models, _payload_model), "params": _list(r.params)}


def _payload(p: Payload) -> JSON:
    return {
        "default": _list(p.default, _payload_rule),
        "default-raw": _list(p.default_raw, _payload_rule),
        "override": _list(p.override, _payload_rule),
        "override-raw": _list(p.override_raw, _payload_rule),
        "filter": _list(p.filter, _filter_rule),
    }


def config_json(c: Config) -> JSON:
    """The management JSON view of a config snapshot (key order as the reference's struct)."""
    streaming: JSON = {}
    _put_nonempty(streaming, "keepalive-seconds", c.streaming.keepalive_seconds)
    _put_nonempty(streaming, "bootstrap-retries", c.streaming.bootstrap_retries)
    out: JSON = {
        "proxy-url": c.proxy_url,
        "force-model-prefix": c.force_model_prefix,
        "request-log": c.request_log,
        "api-keys": _list(c.api_keys),
        "passthrough-headers": c.passthrough_headers,
        "streaming": streaming,
    }
    _put_nonempty(out, "nonstream-keepalive-interval", c.nonstream_keepalive_interval)
    routing: JSON = {}
    _put_nonempty(routing, "strategy", c.routing.strategy)
    out.update({
        "tls": {"enable": c.tls.enable, "cert": c.tls.cert, "key": c.tls.key},
        "debug": c.debug,
        "pprof": {"enable": c.pprof.enable, "addr": c.pprof.addr},
        "commercial-mode": c.commercial_mode,
        "logging-to-file": c.logging_to_file,
        "logs-max-total-size-mb": c.logs_max_total_size_mb,
        "error-logs-max-files": c.error_logs_max_files,
        "usage-statistics-enabled": c.usage_statistics_enabled,
        "disable-cooling": c.disable_cooling,
        "request-retry": c.request_retry,
        "max-retry-credentials": c.max_retry_credentials,
        "max-retry-interval": c.max_retry_interval,
        "quota-exceeded": {"switch-project": c.quota_exceeded.switch_project,
                           "switch-preview-model": c.quota_exceeded.switch_preview_model},
        "routing": routing,
        "ws-auth": c.ws_auth,
        "gemini-api-key": _list(c.gemini_api_key, _gemini),
        "codex-api-key": _list(c.codex_api_key, _codex),
        "codex-header-defaults": {"user-agent": c.codex_header_defaults.user_agent,
                                  "beta-features": c.codex_header_defaults.beta_features},
        "claude-api-key": _list(c.claude_api_key, _claude),
        "claude-header-defaults": {
            "user-agent": c.claude_header_defaults.user_agent,
            "package-version": c.claude_header_defaults.package_version,
            "runtime-version": c.claude_header_defaults.runtime_version,
            "timeout": c.claude_header_defaults.timeout,
        },
        "openai-compatibility": _list(c.openai_compatibility, _openai),
        "vertex-api-key": _list(c.vertex_api_key, _vertex),
        "ampcode": _ampcode(c.ampcode),
    })
    _put_nonempty(out, "oauth-excluded-models",
                  {k: _list(v) for k, v in sorted(c.oauth_excluded_models.items())})
    _put_nonempty(out, "oauth-model-alias",
                  {k: _list(v, _alias) for k, v in sorted(c.oauth_model_alias.items())})
    out["payload"] = _payload(c.payload)
    return out
