"""Immutable snapshots of ``config.yaml`` (the CLIProxyAPI v6.9.0 surface plus proxyd's own keys).

Every class is ``@attrs.frozen``. Attribute names are the YAML keys with ``-`` replaced by ``_``
(the single exception is :attr:`AmpModelMapping.from_`, because ``from`` is a Python keyword).
Lists are tuples. Maps (``headers``, ``oauth-excluded-models``, payload ``params``, ``extra``) are
plain ``dict`` objects so they serialize to JSON directly; treat them as read-only: a snapshot is
shared by every request that grabbed it. Because of those dicts the snapshots are not hashable.

All values here are already validated and normalized by :mod:`proxyd.config.load`.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

import attrs

__all__ = [
    "DEFAULT_AUTH_DIR",
    "DEFAULT_PANEL_REPOSITORY",
    "DEFAULT_PPROF_ADDR",
    "ROUTING_STRATEGIES",
    "AmpModelMapping",
    "AmpUpstreamApiKey",
    "Ampcode",
    "ApiKeyEntry",
    "ClaudeCloak",
    "ClaudeHeaderDefaults",
    "ClaudeKey",
    "CodexHeaderDefaults",
    "CodexKey",
    "Config",
    "GeminiKey",
    "ModelAlias",
    "OAuthModelAlias",
    "OpenAICompatibility",
    "Payload",
    "PayloadFilterRule",
    "PayloadModel",
    "PayloadRule",
    "Pprof",
    "QuotaExceeded",
    "RemoteManagement",
    "Routing",
    "Streaming",
    "TLSConfig",
    "UpstreamTimeouts",
    "VertexKey",
    "attr_to_yaml_key",
    "config_yaml_keys",
]

DEFAULT_PANEL_REPOSITORY = "https://github.com/router-for-me/Cli-Proxy-API-Management-Center"
DEFAULT_PPROF_ADDR = "127.0.0.1:8316"
# Used by Config.resolved_auth_dir when auth-dir is empty (the reference's conventional location).
DEFAULT_AUTH_DIR = "~/.cli-proxy-api"
ROUTING_STRATEGIES: tuple[str, ...] = ("round-robin", "fill-first", "weighted-round-robin")

RoutingStrategy = Literal["round-robin", "fill-first", "weighted-round-robin"]


def attr_to_yaml_key(name: str) -> str:
    """Map an attribute name to its YAML key (``api_keys`` → ``api-keys``, ``from_`` → ``from``)."""
    return name.rstrip("_").replace("_", "-")


def _doc(meaning: str, reload: str | None = None, **extra: Any) -> dict[str, Any]:
    """Field metadata for the generated key reference (:mod:`proxyd.config.docs`); no effect on loading.

    ``reload`` is ``"hot"`` or ``"restart"`` (inherited from the enclosing key when ``None``); ``extra`` may set
    ``section`` (top-level keys), ``type`` / ``default`` (display overrides) and ``proxyd=True`` (an extension).
    """
    meta: dict[str, Any] = {"doc": meaning, **extra}
    if reload is not None:
        meta["reload"] = reload
    return meta


_API_KEY = _doc("The upstream key.")
_PRIORITY = _doc("Higher is preferred.")
_PREFIX = _doc("One path segment (surrounding spaces and `/` trimmed); clients then use `prefix/model`. "
               "A value that still contains `/` is ignored (warning).")
_BASE_URL = _doc("Upstream endpoint.", default="provider default")
_PROXY_URL = _doc("Per-entry proxy (see `proxy-url`); `direct` / `none` bypasses every proxy.")
_HEADERS = _doc("Extra upstream headers; names and values trimmed, empty pairs dropped (warning).")
_MODELS = _doc("Models this entry serves, renamed for clients.")
_LISTED_MODELS = _doc("Models this entry serves, renamed for clients. An empty list and an absent key serve the "
                      "same; the management API shows them as `[]` and `null`.", type="list of entries",
                      default="`[]`")
_EXCLUDED = _doc("Hidden models; trimmed, lower-cased, de-duplicated. `*` wildcards: `gpt-5-*`, `*-mini`, `*flash*`.")
_WEIGHT = _doc("Share of requests under `routing.strategy: weighted-round-robin` (integer up to 1000000); 0 or "
               "less leaves the entry out of that strategy. Ignored by the other strategies.")
_SCOPED = _doc("Rules for upstream errors of this entry that concern the request rather than the key: stop at "
               "once or move on, with or without cooling the key down (see the `request-scoped-errors[].*` rows).")


# --------------------------------------------------------------------------------------------- server


@attrs.frozen
class TLSConfig:
    """``tls``: serve HTTPS with the given certificate and key files."""

    enable: bool = attrs.field(default=False, metadata=_doc("Serve HTTPS."))
    cert: str = attrs.field(
        default="",
        metadata=_doc(
            "PEM certificate path; required when `tls.enable` is true (error otherwise). The file is re-read on "
            "SIGHUP.",
        ),
    )
    key: str = attrs.field(
        default="",
        metadata=_doc(
            "PEM private key path; required when `tls.enable` is true. Re-read on SIGHUP with the certificate.",
        ),
    )


@attrs.frozen
class RemoteManagement:
    """``remote-management``: who may use the management API and the control panel."""

    allow_remote: bool = attrs.field(
        default=False,
        metadata=_doc(
            "Allow management calls from non-loopback addresses.",
        ),
    )
    secret_key: str = attrs.field(
        default="",
        metadata=_doc(
            "Management key (plain text or a bcrypt `$2a$`/`$2b$`/`$2y$` hash). A plain-text key is hashed (bcrypt, "
            "cost 10) when the file is loaded and written back in place, only that value changing. Empty disables the "
            "management API (404).",
        ),
    )
    disable_control_panel: bool = attrs.field(default=False, metadata=_doc("Serve no `/management.html`."))
    panel_github_repository: str = attrs.field(
        default=DEFAULT_PANEL_REPOSITORY,
        metadata=_doc(
            "Kept for compatibility; proxyd never downloads the panel. Blank = default.",
            default="the reference's panel repository",
        ),
    )


@attrs.frozen
class Pprof:
    """``pprof``: the reference's Go profiler listener (accepted for compatibility)."""

    enable: bool = attrs.field(
        default=False,
        metadata=_doc(
            "The reference's Go profiler; accepted for compatibility, no effect.",
        ),
    )
    addr: str = attrs.field(
        default=DEFAULT_PPROF_ADDR,
        metadata=_doc(
            "Profiler listen address; accepted for compatibility. Blank = default.",
        ),
    )


@attrs.frozen
class QuotaExceeded:
    """``quota-exceeded``: what to do when an upstream reports an exhausted quota."""

    switch_project: bool = attrs.field(
        default=False,
        metadata=_doc(
            "On a quota error, try another project of the account.",
        ),
    )
    switch_preview_model: bool = attrs.field(
        default=False,
        metadata=_doc(
            "On a quota error, fall back to a preview model.",
        ),
    )


@attrs.frozen
class Routing:
    """``routing``: credential selection; ``strategy`` is normalized to a canonical name."""

    strategy: RoutingStrategy = attrs.field(
        default='round-robin',
        metadata=_doc(
            "`round-robin`, `fill-first` or `weighted-round-robin` (keys in proportion to their `weight`); also "
            "`roundrobin`, `rr`, `fillfirst`, `ff`, `weightedroundrobin`, `wrr`, any case. Empty = "
            "round-robin. Anything else is an error.",
        ),
    )


@attrs.frozen
class Streaming:
    """``streaming``: SSE keep-alive interval and retries allowed before the first byte."""

    keepalive_seconds: int = attrs.field(
        default=0,
        metadata=_doc(
            "SSE keep-alive comment interval; `0` = off. Negative → 0.",
        ),
    )
    bootstrap_retries: int = attrs.field(
        default=0,
        metadata=_doc(
            "Retries allowed before the first byte of a stream. Negative → 0.",
        ),
    )


@attrs.frozen
class UpstreamTimeouts:
    """``upstream-timeouts`` (proxyd only): connect, first byte and idle-between-chunks limits."""

    connect_seconds: float = attrs.field(default=10, metadata=_doc("Connecting to an upstream.", type="number > 0"))
    first_byte_seconds: float = attrs.field(
        default=300,
        metadata=_doc(
            "From request sent to first response byte.",
            type="number > 0",
        ),
    )
    idle_seconds: float = attrs.field(
        default=300,
        metadata=_doc(
            "Silence allowed between two chunks. There is no total limit on a stream.",
            type="number > 0",
        ),
    )


# ------------------------------------------------------------------------------------------ providers


@attrs.frozen
class ModelAlias:
    """One ``models[]`` entry: ``name`` is the upstream id, ``alias`` the client-visible id."""

    name: str = attrs.field(default="", metadata=_doc("Upstream model id."))
    alias: str = attrs.field(default="", metadata=_doc("Client-visible model id."))


@attrs.frozen
class RequestScopedErrorRule:
    """One ``request-scoped-errors[]`` rule: an upstream error with this ``status`` whose body contains one of
    ``match`` (or matches one of ``match-regexr``) is handled by ``action`` instead of the usual retry rules."""

    status: int = attrs.field(default=0, metadata=_doc("HTTP status the rule applies to. Required."))
    match: tuple[str, ...] = attrs.field(default=(), metadata=_doc("Substrings of the upstream error body."))
    match_regexr: tuple[str, ...] = attrs.field(
        default=(), metadata=_doc("Regular expressions searched in the upstream error body."))
    action: str = attrs.field(
        default="",
        metadata=_doc(
            "`stop` (answer this error, no cooldown), `stop-and-cooldown`, `continue` (try the next key, no "
            "cooldown) or `continue-and-cooldown`. A rule needs a status, an action and a match.",
        ),
    )


@attrs.frozen
class GeminiKey:
    """One ``gemini-api-key[]`` entry (``api-key`` required, de-duplicated by key)."""

    api_key: str = attrs.field(default="", metadata=_API_KEY)
    priority: int = attrs.field(default=0, metadata=_PRIORITY)
    prefix: str = attrs.field(default="", metadata=_PREFIX)
    base_url: str = attrs.field(default="", metadata=_BASE_URL)
    proxy_url: str = attrs.field(default="", metadata=_PROXY_URL)
    headers: dict[str, str] = attrs.field(factory=dict, metadata=_HEADERS)
    models: tuple[ModelAlias, ...] = attrs.field(default=(), metadata=_MODELS)
    excluded_models: tuple[str, ...] = attrs.field(default=(), metadata=_EXCLUDED)
    weight: int = attrs.field(default=1, metadata=_WEIGHT)
    request_scoped_errors: tuple[RequestScopedErrorRule, ...] = attrs.field(default=(), metadata=_SCOPED)


@attrs.frozen
class CodexKey:
    """One ``codex-api-key[]`` entry (``base-url`` required)."""

    api_key: str = attrs.field(default="", metadata=_API_KEY)
    priority: int = attrs.field(default=0, metadata=_PRIORITY)
    prefix: str = attrs.field(default="", metadata=_PREFIX)
    base_url: str = attrs.field(default="", metadata=_BASE_URL)
    proxy_url: str = attrs.field(default="", metadata=_PROXY_URL)
    headers: dict[str, str] = attrs.field(factory=dict, metadata=_HEADERS)
    models: tuple[ModelAlias, ...] | None = attrs.field(default=None, metadata=_LISTED_MODELS)
    excluded_models: tuple[str, ...] = attrs.field(default=(), metadata=_EXCLUDED)
    websockets: bool = attrs.field(default=False, metadata=_doc("Use the upstream's Responses WebSocket transport."))
    weight: int = attrs.field(default=1, metadata=_WEIGHT)
    request_scoped_errors: tuple[RequestScopedErrorRule, ...] = attrs.field(default=(), metadata=_SCOPED)


@attrs.frozen
class ClaudeCloak:
    """``claude-api-key[].cloak``: disguise requests as Claude Code.

    ``mode`` is ``auto`` (default), ``always`` or ``never``; ``cache_user_id`` is ``None`` when unset.
    """

    mode: str = attrs.field(
        default='auto',
        metadata=_doc(
            "`auto` (only clients that are not Claude Code), `always` or `never`.",
        ),
    )
    strict_mode: bool = attrs.field(
        default=False,
        metadata=_doc(
            "Drop the client's system prompts; keep only Claude Code's.",
        ),
    )
    sensitive_words: tuple[str, ...] = attrs.field(
        default=(),
        metadata=_doc(
            "Words obfuscated (zero-width characters) in cloaked requests.",
        ),
    )
    cache_user_id: bool | None = attrs.field(
        default=None,
        metadata=_doc(
            "Reuse one cached `user_id` per API key.",
            default="unset",
        ),
    )


@attrs.frozen
class ClaudeKey:
    """One ``claude-api-key[]`` entry (empty ``base-url`` = Anthropic's API)."""

    api_key: str = attrs.field(default="", metadata=_API_KEY)
    priority: int = attrs.field(default=0, metadata=_PRIORITY)
    prefix: str = attrs.field(default="", metadata=_PREFIX)
    base_url: str = attrs.field(default="", metadata=_BASE_URL)
    proxy_url: str = attrs.field(default="", metadata=_PROXY_URL)
    headers: dict[str, str] = attrs.field(factory=dict, metadata=_HEADERS)
    models: tuple[ModelAlias, ...] | None = attrs.field(default=None, metadata=_LISTED_MODELS)
    excluded_models: tuple[str, ...] = attrs.field(default=(), metadata=_EXCLUDED)
    cloak: ClaudeCloak | None = attrs.field(
        default=None,
        metadata=_doc(
            "Disguise requests as Claude Code (see the `cloak.*` rows).",
            default="unset",
        ),
    )
    weight: int = attrs.field(default=1, metadata=_WEIGHT)
    request_scoped_errors: tuple[RequestScopedErrorRule, ...] = attrs.field(default=(), metadata=_SCOPED)


@attrs.frozen
class VertexKey:
    """One ``vertex-api-key[]`` entry (``api-key`` required; de-duplicated by key + base-url)."""

    api_key: str = attrs.field(default="", metadata=_API_KEY)
    priority: int = attrs.field(default=0, metadata=_PRIORITY)
    prefix: str = attrs.field(default="", metadata=_PREFIX)
    base_url: str = attrs.field(default="", metadata=_BASE_URL)
    proxy_url: str = attrs.field(default="", metadata=_PROXY_URL)
    headers: dict[str, str] = attrs.field(factory=dict, metadata=_HEADERS)
    models: tuple[ModelAlias, ...] = attrs.field(default=(), metadata=_MODELS)
    excluded_models: tuple[str, ...] = attrs.field(default=(), metadata=_EXCLUDED)
    weight: int = attrs.field(default=1, metadata=_WEIGHT)


@attrs.frozen
class ApiKeyEntry:
    """One ``openai-compatibility[].api-key-entries[]`` entry."""

    api_key: str = attrs.field(default="", metadata=_API_KEY)
    proxy_url: str = attrs.field(default="", metadata=_PROXY_URL)
    weight: int = attrs.field(default=1, metadata=_WEIGHT)


@attrs.frozen
class OpenAICompatibility:
    """One ``openai-compatibility[]`` provider (``base-url`` required)."""

    name: str = attrs.field(default="", metadata=_doc("Provider name (identifies it in logs and the management API)."))
    base_url: str = attrs.field(
        default="",
        metadata=_doc(
            "Upstream endpoint, e.g. `https://openrouter.ai/api/v1`. Required.",
        ),
    )
    prefix: str = attrs.field(default="", metadata=_PREFIX)
    priority: int = attrs.field(default=0, metadata=_PRIORITY)
    headers: dict[str, str] = attrs.field(factory=dict, metadata=_HEADERS)
    models: tuple[ModelAlias, ...] | None = attrs.field(
        default=None,
        metadata=_doc(
            "Models served; repeating one `alias` over several models makes a pool used in turn. An empty list "
            "and an absent key serve the same (nothing); the management API shows them as `[]` and `null`.",
            type="list of entries", default="`[]`",
        ),
    )
    api_key_entries: tuple[ApiKeyEntry, ...] = attrs.field(
        default=(),
        metadata=_doc(
            "Upstream keys. Without entries one key-less credential is used.",
        ),
    )
    request_scoped_errors: tuple[RequestScopedErrorRule, ...] = attrs.field(default=(), metadata=_SCOPED)


@attrs.frozen
class ClaudeHeaderDefaults:
    """``claude-header-defaults``: fallback headers for Claude requests."""

    user_agent: str = attrs.field(default="", metadata=_doc("Fallback `User-Agent`."))
    package_version: str = attrs.field(default="", metadata=_doc("Fallback `X-Stainless-Package-Version`."))
    runtime_version: str = attrs.field(default="", metadata=_doc("Fallback `X-Stainless-Runtime-Version`."))
    timeout: str = attrs.field(default="", metadata=_doc("Fallback `X-Stainless-Timeout`."))


@attrs.frozen
class CodexHeaderDefaults:
    """``codex-header-defaults``: fallback headers for OAuth/file Codex credentials."""

    user_agent: str = attrs.field(default="", metadata=_doc("Fallback `User-Agent` for OAuth/file Codex credentials."))
    beta_features: str = attrs.field(
        default="",
        metadata=_doc(
            "Fallback beta-features header for OAuth/file Codex credentials.",
        ),
    )


# -------------------------------------------------------------------------------------------- ampcode


@attrs.frozen
class AmpUpstreamApiKey:
    """``ampcode.upstream-api-keys[]``: an upstream key used for the listed client keys."""

    upstream_api_key: str = attrs.field(default="", metadata=_doc("Upstream Amp key."))
    api_keys: tuple[str, ...] = attrs.field(default=(), metadata=_doc("Client keys that use this upstream key."))


@attrs.frozen
class AmpModelMapping:
    """``ampcode.model-mappings[]``: ``from`` (attribute ``from_``) → ``to``; ``regex`` = pattern match."""

    from_: str = attrs.field(default="", metadata=_doc("Model the Amp client asks for."))
    to: str = attrs.field(default="", metadata=_doc("Model used instead."))
    regex: bool = attrs.field(default=False, metadata=_doc("`from` is a regular expression."))


@attrs.frozen
class Ampcode:
    """``ampcode``: Amp CLI integration."""

    upstream_url: str = attrs.field(
        default='',
        metadata=_doc(
            "Amp upstream URL. Stored only: proxyd serves no Amp routes yet.",
        ),
    )
    upstream_api_key: str = attrs.field(default="", metadata=_doc("Amp upstream key."))
    upstream_api_keys: tuple[AmpUpstreamApiKey, ...] = attrs.field(
        default=(),
        metadata=_doc(
            "Per-client-key upstream keys.",
        ),
    )
    restrict_management_to_localhost: bool = attrs.field(
        default=False,
        metadata=_doc(
            "Amp management routes only from loopback.",
        ),
    )
    model_mappings: tuple[AmpModelMapping, ...] = attrs.field(
        default=(),
        metadata=_doc(
            "Model substitutions for Amp requests.",
        ),
    )
    force_model_mappings: bool = attrs.field(
        default=False,
        metadata=_doc(
            "Mappings win over locally available models.",
        ),
    )


# ------------------------------------------------------------------------------------ oauth / payload


@attrs.frozen
class OAuthModelAlias:
    """One ``oauth-model-alias.<channel>[]`` entry; ``fork`` keeps the original id as well."""

    name: str = attrs.field(default="", metadata=_doc("Model id of the OAuth login."))
    alias: str = attrs.field(default="", metadata=_doc("Client-visible id."))
    fork: bool = attrs.field(default=False, metadata=_doc("Keep the original id and add the alias next to it."))


@attrs.frozen
class PayloadModel:
    """A payload rule's model selector: ``name`` (``*`` wildcards) and optional ``protocol``."""

    name: str = attrs.field(default="", metadata=_doc("Model name; `*` wildcards."))
    protocol: str = attrs.field(
        default="",
        metadata=_doc(
            "Only when the upstream format is this one (`openai`, `openai-response`, `claude`, `codex`, "
            "`gemini`, …); empty = any.",
        ),
    )


@attrs.frozen
class PayloadRule:
    """A ``payload.default|default-raw|override|override-raw`` rule: JSON path → value.

    For the ``*-raw`` lists a string value is a raw JSON fragment (validated at load).
    """

    models: tuple[PayloadModel, ...] = attrs.field(default=(), metadata=_doc("Models the rule applies to."))
    params: dict[str, Any] = attrs.field(
        factory=dict,
        metadata=_doc(
            "JSON path → value. In the `*-raw` lists a string value is raw JSON; invalid JSON drops the rule "
            "(warning).",
            type="map path → value",
        ),
    )


@attrs.frozen
class PayloadFilterRule:
    """A ``payload.filter`` rule: JSON paths to delete from matching requests."""

    models: tuple[PayloadModel, ...] = attrs.field(default=(), metadata=_doc("Models the rule applies to."))
    params: tuple[str, ...] = attrs.field(default=(), metadata=_doc("JSON paths deleted from matching requests."))


@attrs.frozen
class Payload:
    """``payload``: request-body rewriting rules, kept in file order."""

    default: tuple[PayloadRule, ...] = attrs.field(
        default=(),
        metadata=_doc(
            "Set a path only when the request lacks it.",
        ),
    )
    default_raw: tuple[PayloadRule, ...] = attrs.field(
        default=(),
        metadata=_doc(
            "As `default`, values given as raw JSON text.",
        ),
    )
    override: tuple[PayloadRule, ...] = attrs.field(default=(), metadata=_doc("Always set the path."))
    override_raw: tuple[PayloadRule, ...] = attrs.field(
        default=(),
        metadata=_doc(
            "As `override`, values given as raw JSON text.",
        ),
    )
    filter: tuple[PayloadFilterRule, ...] = attrs.field(default=(), metadata=_doc("Delete paths."))


# ------------------------------------------------------------------------------------------- top level


@attrs.frozen
class Config:
    """One validated snapshot of ``config.yaml``.

    ``extra`` holds unknown top-level keys (plain Python values). ``config_version`` is the file's
    ``config-version`` (0 when absent; 8 or more means the nested layout was translated on load).
    """

    host: str = attrs.field(
        default="",
        metadata=_doc(
            'Interface to bind. `""` = every interface (IPv4 and IPv6), `127.0.0.1` = this machine only.',
            "restart",
            section="Server",
        ),
    )
    port: int = attrs.field(
        default=8317,
        metadata=_doc(
            "TCP port. proxyd rejects `0` (the reference would pick a random port).",
            "restart",
            section="Server",
            type="int 1–65535",
        ),
    )
    tls: TLSConfig = attrs.field(factory=TLSConfig, metadata=_doc("HTTPS.", "restart", section="Server"))
    remote_management: RemoteManagement = attrs.field(
        factory=RemoteManagement,
        metadata=_doc(
            "Management API access.",
            "hot",
            section="Management API and control panel",
        ),
    )
    auth_dir: str = attrs.field(
        default="",
        metadata=_doc(
            "Directory of OAuth / service-account JSON files. `~` is expanded; a relative path is taken from the "
            "config file's directory. Empty resolves to `~/.cli-proxy-api`.",
            "restart",
            section="Credentials and client access",
        ),
    )
    api_keys: tuple[str, ...] = attrs.field(
        default=(),
        metadata=_doc(
            "Client keys accepted on the proxy endpoints; trimmed, blanks dropped, duplicates removed. **Empty = no "
            "client authentication**; set keys before listening beyond loopback (proxyd warns at start-up). The "
            "sample keys of the reference's example config (`your-api-key-1`…`3`) are refused.",
            "hot",
            section="Credentials and client access",
        ),
    )
    debug: bool = attrs.field(
        default=False,
        metadata=_doc(
            "Debug-level logging.",
            "hot",
            section="Logging and diagnostics",
        ),
    )
    pprof: Pprof = attrs.field(
        factory=Pprof,
        metadata=_doc(
            "Go profiler (compatibility only).",
            "hot",
            section="Logging and diagnostics",
        ),
    )
    commercial_mode: bool = attrs.field(
        default=False,
        metadata=_doc(
            "Disable the per-request logging machinery.",
            "restart",
            section="Logging and diagnostics",
        ),
    )
    logging_to_file: bool = attrs.field(
        default=False,
        metadata=_doc(
            "Application log to rotating files instead of standard output.",
            "hot",
            section="Logging and diagnostics",
        ),
    )
    logs_max_total_size_mb: int = attrs.field(
        default=0,
        metadata=_doc(
            "Total size cap for log files; oldest removed first. `0` = no cap; negative → 0 (warning).",
            "hot",
            section="Logging and diagnostics",
        ),
    )
    error_logs_max_files: int = attrs.field(
        default=10,
        metadata=_doc(
            "`error-*.log` dumps kept while `request-log` is off. `0` = keep all; negative → 10 (warning).",
            "hot",
            section="Logging and diagnostics",
        ),
    )
    usage_statistics_enabled: bool = attrs.field(
        default=False,
        metadata=_doc(
            "Aggregate request/token usage per client key and model.",
            "hot",
            section="Logging and diagnostics",
        ),
    )
    disable_cooling: bool = attrs.field(
        default=False,
        metadata=_doc(
            "Never cool credentials down after quota/rate-limit errors.",
            "hot",
            section="Upstream behaviour",
        ),
    )
    request_log: bool = attrs.field(
        default=False,
        metadata=_doc(
            "Dump every proxied request/response (bodies capped).",
            "hot",
            section="Logging and diagnostics",
        ),
    )
    proxy_url: str = attrs.field(
        default="",
        metadata=_doc(
            'Outbound proxy: `""` (none; environment proxies apply), or a `socks5://`, `http://`, `https://` URL with '
            "a host. Per-entry `proxy-url` also accepts `direct` / `none` to bypass every proxy. Anything else is an "
            "error.",
            "hot",
            section="Upstream behaviour",
        ),
    )
    force_model_prefix: bool = attrs.field(
        default=False,
        metadata=_doc(
            "A model name without `prefix/` only uses credentials without a prefix.",
            "hot",
            section="Upstream behaviour",
        ),
    )
    passthrough_headers: bool = attrs.field(
        default=False,
        metadata=_doc(
            "Forward selected upstream response headers to clients.",
            "hot",
            section="Upstream behaviour",
        ),
    )
    request_retry: int = attrs.field(
        default=3,
        metadata=_doc(
            "Times a failed upstream call (403, 408, 429 after cool-down, 500, 502, 503, 504) moves to another "
            "credential. Negative → 0 (warning). The default applies also when the key is absent (the reference would "
            "use 0).",
            "hot",
            section="Upstream behaviour",
        ),
    )
    max_retry_credentials: int = attrs.field(
        default=0,
        metadata=_doc(
            "Most credentials tried per request; `0` = all. Negative → 0 (warning).",
            "hot",
            section="Upstream behaviour",
        ),
    )
    max_retry_interval: int = attrs.field(
        default=30,
        metadata=_doc(
            "Longest wait, in seconds, for a cooled-down credential. Negative → 0 (warning). Default also when "
            "absent.",
            "hot",
            section="Upstream behaviour",
        ),
    )
    quota_exceeded: QuotaExceeded = attrs.field(
        factory=QuotaExceeded,
        metadata=_doc(
            "Quota error handling.",
            "hot",
            section="Upstream behaviour",
        ),
    )
    routing: Routing = attrs.field(
        factory=Routing,
        metadata=_doc(
            "Credential selection.",
            "hot",
            section="Upstream behaviour",
        ),
    )
    ws_auth: bool = attrs.field(
        default=False,
        metadata=_doc(
            "Require a client key on the `/v1/ws` relay too.",
            "hot",
            section="Credentials and client access",
        ),
    )
    nonstream_keepalive_interval: int = attrs.field(
        default=0,
        metadata=_doc(
            "Blank-line keep-alives every N seconds on non-streaming responses; `0` = off. Negative → 0.",
            "hot",
            section="Upstream behaviour",
        ),
    )
    streaming: Streaming = attrs.field(
        factory=Streaming,
        metadata=_doc(
            "Streaming behaviour.",
            "hot",
            section="Upstream behaviour",
        ),
    )
    gemini_api_key: tuple[GeminiKey, ...] = attrs.field(
        default=(),
        metadata=_doc(
            "Google Gemini API keys. `api-key` required (entries without it are dropped, warning); duplicate keys "
            "dropped (warning).",
            "hot",
            section="Provider credentials",
        ),
    )
    codex_api_key: tuple[CodexKey, ...] = attrs.field(
        default=(),
        metadata=_doc(
            "OpenAI Codex / Responses API keys. `base-url` required (entries without it are dropped, warning).",
            "hot",
            section="Provider credentials",
        ),
    )
    claude_api_key: tuple[ClaudeKey, ...] = attrs.field(
        default=(),
        metadata=_doc(
            "Anthropic Claude API keys. Empty `base-url` = Anthropic's API.",
            "hot",
            section="Provider credentials",
        ),
    )
    openai_compatibility: tuple[OpenAICompatibility, ...] = attrs.field(
        default=(),
        metadata=_doc(
            "Any OpenAI-compatible service. `base-url` required (dropped otherwise, warning). The legacy per-provider "
            "`api-keys` list is ignored (warning).",
            "hot",
            section="Provider credentials",
        ),
    )
    vertex_api_key: tuple[VertexKey, ...] = attrs.field(
        default=(),
        metadata=_doc(
            "Vertex-compatible endpoints. `api-key` required; duplicates by key + base-url dropped; `models` entries "
            "missing name or alias dropped (warnings).",
            "hot",
            section="Provider credentials",
        ),
    )
    claude_header_defaults: ClaudeHeaderDefaults = attrs.field(
        factory=ClaudeHeaderDefaults,
        metadata=_doc(
            "Fallback headers for Claude requests.",
            "hot",
            section="Other sections",
        ),
    )
    codex_header_defaults: CodexHeaderDefaults = attrs.field(
        factory=CodexHeaderDefaults,
        metadata=_doc(
            "Fallback headers for Codex OAuth logins.",
            "hot",
            section="Other sections",
        ),
    )
    ampcode: Ampcode = attrs.field(
        factory=Ampcode,
        metadata=_doc(
            "Amp CLI integration.",
            "hot",
            section="Other sections",
        ),
    )
    oauth_excluded_models: dict[str, tuple[str, ...]] = attrs.field(
        factory=dict,
        metadata=_doc(
            "Channel → model patterns hidden for OAuth/file credentials; channels lower-cased, lists normalized, "
            "empty lists dropped.",
            "hot",
            section="Other sections",
            type="map channel → list of string",
        ),
    )
    oauth_model_alias: dict[str, tuple[OAuthModelAlias, ...]] = attrs.field(
        factory=dict,
        metadata=_doc(
            "Channel → renames for OAuth/file credentials; entries with an empty name/alias, alias equal to name, or "
            "an alias repeated in the channel are dropped (warnings).",
            "hot",
            section="Other sections",
        ),
    )
    payload: Payload = attrs.field(
        factory=Payload,
        metadata=_doc(
            "Request-body rewriting rules, applied in file order.",
            "hot",
            section="Other sections",
        ),
    )
    # proxyd's own keys (the reference ignores them).
    request_body_limit_mb: int = attrs.field(
        default=32,
        metadata=_doc(
            "Largest request body in MiB, counted after decompression; larger bodies get 413.",
            "hot",
            section="Server",
            type="int ≥ 1",
            proxyd=True,
        ),
    )
    trusted_proxies: tuple[str, ...] = attrs.field(
        default=(),
        metadata=_doc(
            "Reverse proxies whose `X-Forwarded-For` is believed. Empty: the client address is the TCP peer. Each "
            "entry must parse as an IP address or network (`10.0.0.0/8`, `::1`); a bare address means a single host.",
            "hot",
            section="Server",
            type="list of IP/CIDR",
            proxyd=True,
        ),
    )
    upstream_timeouts: UpstreamTimeouts = attrs.field(
        factory=UpstreamTimeouts,
        metadata=_doc(
            "Upstream time limits in seconds.",
            "hot",
            section="Upstream behaviour",
            proxyd=True,
        ),
    )
    shutdown_grace_seconds: float = attrs.field(
        default=30,
        metadata=_doc(
            "On SIGTERM, how long in-flight requests may finish before they are cut.",
            "restart",
            section="Server",
            type="number ≥ 0",
            proxyd=True,
        ),
    )
    max_cooldown_seconds: float = attrs.field(
        default=1800,
        metadata=_doc(
            "Longest cooldown any upstream hint (Retry-After, Google RetryInfo, Codex `resets_at`) may impose on a "
            "credential.",
            "hot",
            section="Server",
            type="number > 0",
            proxyd=True,
        ),
    )
    config_version: int = attrs.field(
        default=0,
        metadata=_doc(
            "`8` or more: the file uses the nested layout (see below), mapped onto these keys on load. `0`/absent: "
            "the flat v6.9.0 layout.",
            "restart",
            section="File format",
        ),
    )
    extra: dict[str, Any] = attrs.field(factory=dict)

    def resolved_auth_dir(self, config_dir: Path) -> Path:
        """``auth-dir`` as an absolute path: ``~`` expanded, relative paths taken from ``config_dir``.

        An empty ``auth-dir`` resolves to ``~/.cli-proxy-api``.
        """
        raw = self.auth_dir.strip() or DEFAULT_AUTH_DIR
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = Path(config_dir).expanduser() / path
        return Path(os.path.normpath(path.absolute()))

    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``trusted-proxies`` parsed into :mod:`ipaddress` networks (already validated)."""
        return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in self.trusted_proxies)

    @property
    def request_body_limit_bytes(self) -> int:
        """``request-body-limit-mb`` in bytes."""
        return self.request_body_limit_mb * 1024 * 1024

    def yaml_value(self, key: str) -> Any:
        """The parsed value for a top-level YAML key (``extra`` for unknown keys, else ``None``)."""
        attr = _YAML_TO_ATTR.get(key)
        if attr is None:
            return self.extra.get(key)
        return getattr(self, attr)


def config_yaml_keys() -> tuple[str, ...]:
    """Every top-level YAML key :class:`Config` understands, in declaration order."""
    return tuple(_YAML_TO_ATTR)


_YAML_TO_ATTR: dict[str, str] = {
    attr_to_yaml_key(f.name): f.name for f in attrs.fields(Config) if f.name != "extra"
}
