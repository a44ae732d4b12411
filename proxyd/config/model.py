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
ROUTING_STRATEGIES: tuple[str, ...] = ("round-robin", "fill-first")

RoutingStrategy = Literal["round-robin", "fill-first"]


def attr_to_yaml_key(name: str) -> str:
    """Map an attribute name to its YAML key (``api_keys`` → ``api-keys``, ``from_`` → ``from``)."""
    return name.rstrip("_").replace("_", "-")


# --------------------------------------------------------------------------------------------- server


@attrs.frozen
class TLSConfig:
    """``tls``: serve HTTPS with the given certificate and key files."""

    enable: bool = False
    cert: str = ""
    key: str = ""


@attrs.frozen
class RemoteManagement:
    """``remote-management``: who may use the management API and the control panel."""

    allow_remote: bool = False
    secret_key: str = ""
    disable_control_panel: bool = False
    panel_github_repository: str = DEFAULT_PANEL_REPOSITORY


@attrs.frozen
class Pprof:
    """``pprof``: the reference's Go profiler listener (accepted for compatibility)."""

    enable: bool = False
    addr: str = DEFAULT_PPROF_ADDR


@attrs.frozen
class QuotaExceeded:
    """``quota-exceeded``: what to do when an upstream reports an exhausted quota."""

    switch_project: bool = False
    switch_preview_model: bool = False


@attrs.frozen
class Routing:
    """``routing``: credential selection; ``strategy`` is normalized to a canonical name."""

    strategy: RoutingStrategy = "round-robin"


@attrs.frozen
class Streaming:
    """``streaming``: SSE keep-alive interval and retries allowed before the first byte."""

    keepalive_seconds: int = 0
    bootstrap_retries: int = 0


@attrs.frozen
class UpstreamTimeouts:
    """``upstream-timeouts`` (proxyd only): connect, first byte and idle-between-chunks limits."""

    connect_seconds: float = 10
    first_byte_seconds: float = 300
    idle_seconds: float = 300


# ------------------------------------------------------------------------------------------ providers


@attrs.frozen
class ModelAlias:
    """One ``models[]`` entry: ``name`` is the upstream id, ``alias`` the client-visible id."""

    name: str = ""
    alias: str = ""


@attrs.frozen
class GeminiKey:
    """One ``gemini-api-key[]`` entry (``api-key`` required, de-duplicated by key)."""

    api_key: str = ""
    priority: int = 0
    prefix: str = ""
    base_url: str = ""
    proxy_url: str = ""
    headers: dict[str, str] = attrs.field(factory=dict)
    models: tuple[ModelAlias, ...] = ()
    excluded_models: tuple[str, ...] = ()


@attrs.frozen
class CodexKey:
    """One ``codex-api-key[]`` entry (``base-url`` required)."""

    api_key: str = ""
    priority: int = 0
    prefix: str = ""
    base_url: str = ""
    proxy_url: str = ""
    headers: dict[str, str] = attrs.field(factory=dict)
    models: tuple[ModelAlias, ...] = ()
    excluded_models: tuple[str, ...] = ()
    websockets: bool = False


@attrs.frozen
class ClaudeCloak:
    """``claude-api-key[].cloak``: disguise requests as Claude Code.

    ``mode`` is ``auto`` (default), ``always`` or ``never``; ``cache_user_id`` is ``None`` when unset.
    """

    mode: str = "auto"
    strict_mode: bool = False
    sensitive_words: tuple[str, ...] = ()
    cache_user_id: bool | None = None


@attrs.frozen
class ClaudeKey:
    """One ``claude-api-key[]`` entry (empty ``base-url`` = Anthropic's API)."""

    api_key: str = ""
    priority: int = 0
    prefix: str = ""
    base_url: str = ""
    proxy_url: str = ""
    headers: dict[str, str] = attrs.field(factory=dict)
    models: tuple[ModelAlias, ...] = ()
    excluded_models: tuple[str, ...] = ()
    cloak: ClaudeCloak | None = None


@attrs.frozen
class VertexKey:
    """One ``vertex-api-key[]`` entry (``api-key`` required; de-duplicated by key + base-url)."""

    api_key: str = ""
    priority: int = 0
    prefix: str = ""
    base_url: str = ""
    proxy_url: str = ""
    headers: dict[str, str] = attrs.field(factory=dict)
    models: tuple[ModelAlias, ...] = ()
    excluded_models: tuple[str, ...] = ()


@attrs.frozen
class ApiKeyEntry:
    """One ``openai-compatibility[].api-key-entries[]`` entry."""

    api_key: str = ""
    proxy_url: str = ""


@attrs.frozen
class OpenAICompatibility:
    """One ``openai-compatibility[]`` provider (``base-url`` required)."""

    name: str = ""
    base_url: str = ""
    prefix: str = ""
    priority: int = 0
    headers: dict[str, str] = attrs.field(factory=dict)
    models: tuple[ModelAlias, ...] = ()
    api_key_entries: tuple[ApiKeyEntry, ...] = ()


@attrs.frozen
class ClaudeHeaderDefaults:
    """``claude-header-defaults``: fallback headers for Claude requests."""

    user_agent: str = ""
    package_version: str = ""
    runtime_version: str = ""
    timeout: str = ""


@attrs.frozen
class CodexHeaderDefaults:
    """``codex-header-defaults``: fallback headers for OAuth/file Codex credentials."""

    user_agent: str = ""
    beta_features: str = ""


# -------------------------------------------------------------------------------------------- ampcode


@attrs.frozen
class AmpUpstreamApiKey:
    """``ampcode.upstream-api-keys[]``: an upstream key used for the listed client keys."""

    upstream_api_key: str = ""
    api_keys: tuple[str, ...] = ()


@attrs.frozen
class AmpModelMapping:
    """``ampcode.model-mappings[]``: ``from`` (attribute ``from_``) → ``to``; ``regex`` = pattern match."""

    from_: str = ""
    to: str = ""
    regex: bool = False


@attrs.frozen
class Ampcode:
    """``ampcode``: Amp CLI integration."""

    upstream_url: str = ""
    upstream_api_key: str = ""
    upstream_api_keys: tuple[AmpUpstreamApiKey, ...] = ()
    restrict_management_to_localhost: bool = False
    model_mappings: tuple[AmpModelMapping, ...] = ()
    force_model_mappings: bool = False


# ------------------------------------------------------------------------------------ oauth / payload


@attrs.frozen
class OAuthModelAlias:
    """One ``oauth-model-alias.<channel>[]`` entry; ``fork`` keeps the original id as well."""

    name: str = ""
    alias: str = ""
    fork: bool = False


@attrs.frozen
class PayloadModel:
    """A payload rule's model selector: ``name`` (``*`` wildcards) and optional ``protocol``."""

    name: str = ""
    protocol: str = ""


@attrs.frozen
class PayloadRule:
    """A ``payload.default|default-raw|override|override-raw`` rule: JSON path → value.

    For the ``*-raw`` lists a string value is a raw JSON fragment (validated at load).
    """

    models: tuple[PayloadModel, ...] = ()
    params: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class PayloadFilterRule:
    """A ``payload.filter`` rule: JSON paths to delete from matching requests."""

    models: tuple[PayloadModel, ...] = ()
    params: tuple[str, ...] = ()


@attrs.frozen
class Payload:
    """``payload``: request-body rewriting rules, kept in file order."""

    default: tuple[PayloadRule, ...] = ()
    default_raw: tuple[PayloadRule, ...] = ()
    override: tuple[PayloadRule, ...] = ()
    override_raw: tuple[PayloadRule, ...] = ()
    filter: tuple[PayloadFilterRule, ...] = ()


# ------------------------------------------------------------------------------------------- top level


@attrs.frozen
class Config:
    """One validated snapshot of ``config.yaml``.

    ``extra`` holds unknown top-level keys (plain Python values). ``config_version`` is the file's
    ``config-version`` (0 when absent; 8 or more means the nested layout was translated on load).
    """

    host: str = ""
    port: int = 8317
    tls: TLSConfig = attrs.field(factory=TLSConfig)
    remote_management: RemoteManagement = attrs.field(factory=RemoteManagement)
    auth_dir: str = ""
    api_keys: tuple[str, ...] = ()
    debug: bool = False
    pprof: Pprof = attrs.field(factory=Pprof)
    commercial_mode: bool = False
    logging_to_file: bool = False
    logs_max_total_size_mb: int = 0
    error_logs_max_files: int = 10
    usage_statistics_enabled: bool = False
    disable_cooling: bool = False
    request_log: bool = False
    proxy_url: str = ""
    force_model_prefix: bool = False
    passthrough_headers: bool = False
    request_retry: int = 3
    max_retry_credentials: int = 0
    max_retry_interval: int = 30
    quota_exceeded: QuotaExceeded = attrs.field(factory=QuotaExceeded)
    routing: Routing = attrs.field(factory=Routing)
    ws_auth: bool = False
    nonstream_keepalive_interval: int = 0
    streaming: Streaming = attrs.field(factory=Streaming)
    gemini_api_key: tuple[GeminiKey, ...] = ()
    codex_api_key: tuple[CodexKey, ...] = ()
    claude_api_key: tuple[ClaudeKey, ...] = ()
    openai_compatibility: tuple[OpenAICompatibility, ...] = ()
    vertex_api_key: tuple[VertexKey, ...] = ()
    claude_header_defaults: ClaudeHeaderDefaults = attrs.field(factory=ClaudeHeaderDefaults)
    codex_header_defaults: CodexHeaderDefaults = attrs.field(factory=CodexHeaderDefaults)
    ampcode: Ampcode = attrs.field(factory=Ampcode)
    oauth_excluded_models: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    oauth_model_alias: dict[str, tuple[OAuthModelAlias, ...]] = attrs.field(factory=dict)
    payload: Payload = attrs.field(factory=Payload)
    # proxyd's own keys (the reference ignores them).
    request_body_limit_mb: int = 32
    trusted_proxies: tuple[str, ...] = ()
    upstream_timeouts: UpstreamTimeouts = attrs.field(factory=UpstreamTimeouts)
    shutdown_grace_seconds: float = 30
    max_cooldown_seconds: float = 1800
    config_version: int = 0
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
