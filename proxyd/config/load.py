"""Load and validate ``config.yaml`` into a :class:`~proxyd.config.model.Config` snapshot.

Nothing here raises for bad content: every issue becomes a :class:`Problem` with the YAML key path
(``openai-compatibility[1].base-url``). All problems are collected in one pass. Problem messages
never contain configured values that may be secret (keys, proxy URLs with credentials).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import attrs
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from proxyd.config.document import ConfigDocument, to_plain
from proxyd.config.fastyaml import load_plain
from proxyd.config.model import (
    DEFAULT_PANEL_REPOSITORY,
    DEFAULT_PPROF_ADDR,
    Ampcode,
    AmpModelMapping,
    AmpUpstreamApiKey,
    ApiKeyEntry,
    ClaudeCloak,
    ClaudeHeaderDefaults,
    ClaudeKey,
    CodexHeaderDefaults,
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
    Pprof,
    QuotaExceeded,
    RemoteManagement,
    RequestScopedErrorRule,
    Routing,
    Streaming,
    TLSConfig,
    UpstreamTimeouts,
    VertexKey,
    config_yaml_keys,
)
from proxyd.config.v8 import translate_v8

__all__ = [
    "EXAMPLE_SAMPLE_API_KEYS",
    "LEGACY_KEYS",
    "LoadResult",
    "Problem",
    "format_path",
    "load_config",
    "normalize_prefix",
    "normalize_routing_strategy",
    "parse_config_bytes",
    "parse_config_text",
    "validate_proxy_url",
]

Severity = Literal["error", "warning"]
Path_ = tuple[str | int, ...]
T = TypeVar("T")

# The client keys shipped in the reference's config.example.yaml (DECISIONS 6: refuse to run with them).
EXAMPLE_SAMPLE_API_KEYS: frozenset[str] = frozenset({"your-api-key-1", "your-api-key-2", "your-api-key-3"})

# Legacy top-level keys v6.9.0 no longer reads (management.md §1.1) → where the setting lives now.
LEGACY_KEYS: dict[str, str] = {
    "generative-language-api-key": "gemini-api-key",
    "amp-upstream-url": "ampcode.upstream-url",
    "amp-upstream-api-key": "ampcode.upstream-api-key",
    "amp-restrict-management-to-localhost": "ampcode.restrict-management-to-localhost",
    "amp-model-mappings": "ampcode.model-mappings",
    "auth": "api-keys and the provider key lists",
}

_ROUTING_ALIASES = {
    "weighted-round-robin": "weighted-round-robin",
    "weightedroundrobin": "weighted-round-robin",
    "wrr": "weighted-round-robin",
    "": "round-robin",
    "round-robin": "round-robin",
    "roundrobin": "round-robin",
    "rr": "round-robin",
    "fill-first": "fill-first",
    "fillfirst": "fill-first",
    "ff": "fill-first",
}
# YAML 1.1 booleans that Go's yaml.v3 still accepts for bool fields when written unquoted.
_YAML11_BOOLS = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "off", "Off", "OFF"), False),
}
_PROXY_URL_MESSAGE = 'must be empty, "direct", "none", or a socks5/http/https URL with a host'
_PROXY_SCHEMES = {"socks5", "http", "https"}
_ABSENT = object()
_DUPLICATE_KEY = re.compile(r'found duplicate key "(.*?)" with value')


@attrs.frozen
class Problem:
    """One issue found while loading: YAML key path, message, severity (``line`` is 1-based)."""

    path: str
    message: str
    severity: Severity = "error"
    line: int | None = attrs.field(default=None, eq=False, kw_only=True)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@attrs.frozen
class LoadResult:
    """Outcome of a load: ``config`` is ``None`` iff there is at least one error.

    ``document`` (the round-trip tree that management edits need) is parsed from ``text`` on first use when the
    fast loader produced ``config``: a reload that nobody edits never pays for the comment-preserving parse.
    """

    config: Config | None
    _document: ConfigDocument | None
    problems: tuple[Problem, ...]
    sha256: str
    text: str | None = attrs.field(default=None, kw_only=True, eq=False, repr=False)
    _cache: list[ConfigDocument] = attrs.field(factory=list, init=False, eq=False, repr=False)

    @property
    def document(self) -> ConfigDocument | None:
        if self._document is not None:
            return self._document
        if self.config is None or self.text is None:
            return None
        if not self._cache:
            self._cache.append(ConfigDocument.parse(self.text))
        return self._cache[0]

    @property
    def ok(self) -> bool:
        """True when no problem has error severity."""
        return not self.errors

    @property
    def errors(self) -> tuple[Problem, ...]:
        """Error-severity problems."""
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """Warning-severity problems."""
        return tuple(p for p in self.problems if p.severity == "warning")


def format_path(path: Sequence[str | int]) -> str:
    """``("openai-compatibility", 1, "base-url")`` → ``openai-compatibility[1].base-url``."""
    out = ""
    for elem in path:
        if isinstance(elem, int):
            out += f"[{elem}]"
        else:
            out += f".{elem}" if out else str(elem)
    return out


def normalize_prefix(value: str) -> str:
    """Credential prefix rule (§1.2): trim spaces and ``/``; a remaining ``/`` makes it empty."""
    value = value.strip().strip("/")
    return "" if "/" in value else value


def normalize_routing_strategy(value: str) -> str | None:
    """Canonical routing strategy for a value or alias (case-insensitive), ``None`` if unknown."""
    return _ROUTING_ALIASES.get(value.strip().lower())


def validate_proxy_url(value: str) -> bool:
    """True for ``""``, ``direct``/``none`` (any case) or a socks5/http/https URL with a host."""
    value = value.strip()
    if value == "" or value.lower() in ("direct", "none"):
        return True
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return False
    return parts.scheme.lower() in _PROXY_SCHEMES and bool(host)


# ---------------------------------------------------------------------------------------- the reader


def _line_of(parent: Any, key: Any) -> int | None:
    if type(parent) is dict or type(parent) is list:  # the fast loader's plain values know no lines
        return None
    lc = getattr(parent, "lc", None)
    if lc is None:
        return None
    try:
        pos = lc.key(key) if isinstance(parent, Mapping) else lc.item(key)
    except Exception:
        return None
    return int(pos[0]) + 1 if pos else None


class _Reader:
    """Typed access to the raw tree that records problems instead of raising."""

    def __init__(self, aliases: Mapping[Path_, str] | None = None, *, fast: bool = False) -> None:
        self.fast = fast  # reading the fast loader's plain values (quotes unknown)
        self.problems: list[Problem] = []
        self.aliases = dict(aliases or {})
        self.lines: dict[Path_, int | None] = {}

    def fmt(self, path: Path_) -> str:
        for n in range(len(path), 0, -1):
            alias = self.aliases.get(path[:n])
            if alias is not None:
                rest = format_path(path[n:])
                if not rest:
                    return alias
                return alias + rest if rest.startswith("[") else f"{alias}.{rest}"
        return format_path(path)

    def add(self, path: Path_, message: str, severity: Severity = "error",
            parent: Any = None, key: Any = None) -> None:
        line = _line_of(parent, key) if parent is not None else self.lines.get(path)
        self.problems.append(Problem(self.fmt(path), message, severity, line=line))

    def error(self, path: Path_, message: str, parent: Any = None, key: Any = None) -> None:
        self.add(path, message, "error", parent, key)

    def warn(self, path: Path_, message: str, parent: Any = None, key: Any = None) -> None:
        self.add(path, message, "warning", parent, key)

    # -- scalars ------------------------------------------------------------------------

    @staticmethod
    def raw(m: Any, key: str) -> Any:
        if type(m) is dict or isinstance(m, Mapping):
            return m.get(key, _ABSENT)
        return _ABSENT

    def as_str(self, v: Any, path: Path_, parent: Any, key: Any, default: str = "") -> str:
        if type(v) is str:
            return v
        if v is _ABSENT or v is None:
            return default
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str | int | float):
            return str(v)
        self.error(path, "must be a string", parent, key)
        return default

    def as_int(self, v: Any, path: Path_, parent: Any, key: Any, default: int = 0) -> int | None:
        if v is _ABSENT or v is None:
            return default
        if isinstance(v, int) and not isinstance(v, bool):
            return int(v)
        if isinstance(v, float) and v.is_integer():
            return int(v)
        self.error(path, "must be an integer", parent, key)
        return None

    def as_number(self, v: Any, path: Path_, parent: Any, key: Any, default: float) -> float | None:
        if v is _ABSENT or v is None:
            return default
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v) if isinstance(v, float) else int(v)
        self.error(path, "must be a number", parent, key)
        return None

    def as_bool(self, v: Any, path: Path_, parent: Any, key: Any, default: bool = False) -> bool:
        if v is _ABSENT or v is None:
            return default
        if isinstance(v, bool):
            return bool(v)
        if type(v) is str and v in _YAML11_BOOLS:  # plain (unquoted) scalar only
            if self.fast:  # the fast loader cannot tell `yes` from `'yes'`: let the round-trip path decide
                self.warn(path, "YAML 1.1 boolean word", parent, key)
            return _YAML11_BOOLS[v]
        self.error(path, "must be a boolean (true or false)", parent, key)
        return default

    # -- field helpers on a mapping ------------------------------------------------------

    def str_(self, m: Any, key: str, path: Path_, default: str = "") -> str:
        return self.as_str(self.raw(m, key), (*path, key), m, key, default)

    def int_(self, m: Any, key: str, path: Path_, default: int = 0) -> int:
        v = self.as_int(self.raw(m, key), (*path, key), m, key, default)
        return default if v is None else v

    def bool_(self, m: Any, key: str, path: Path_, default: bool = False) -> bool:
        return self.as_bool(self.raw(m, key), (*path, key), m, key, default)

    def nonneg_int(self, m: Any, key: str, path: Path_, default: int, negative: int = 0) -> int:
        """Integer where a negative value is replaced by ``negative`` with a warning (§1.3)."""
        v = self.as_int(self.raw(m, key), (*path, key), m, key, default)
        if v is None:
            return default
        if v < 0:
            self.warn((*path, key), f"negative value treated as {negative}", m, key)
            return negative
        return v

    def map_(self, m: Any, key: str, path: Path_) -> Mapping[Any, Any]:
        v = self.raw(m, key)
        if v is _ABSENT or v is None:
            return {}
        if isinstance(v, Mapping):
            return v
        self.error((*path, key), "must be a mapping", m, key)
        return {}

    def list_(self, m: Any, key: str, path: Path_, what: str = "a list") -> list[Any]:
        v = self.raw(m, key)
        if v is _ABSENT or v is None:
            return []
        if isinstance(v, list):
            return v
        self.error((*path, key), f"must be {what}", m, key)
        return []

    def str_list(self, m: Any, key: str, path: Path_) -> list[str]:
        v = self.raw(m, key)
        if v is _ABSENT or v is None:
            return []
        if not isinstance(v, list):
            self.error((*path, key), "must be a list of strings", m, key)
            return []
        out: list[str] = []
        for i, item in enumerate(v):
            if item is None:
                continue
            if isinstance(item, Mapping | list):
                self.error((*path, key, i), "must be a string", v, i)
                continue
            out.append(self.as_str(item, (*path, key, i), v, i))
        return out

    def items(self, m: Any, key: str, path: Path_, parse: Callable[[Any, Path_], T | None]) -> list[T]:
        """Parse a list of mappings; non-mapping items are errors."""
        out: list[T] = []
        raw = self.raw(m, key)
        for i, item in enumerate(self.list_(m, key, path, "a list of mappings")):
            ipath = (*path, key, i)
            self.lines[ipath] = _line_of(raw, i)
            if type(item) is not dict and not isinstance(item, Mapping):
                self.error(ipath, "must be a mapping", raw, i)
                continue
            parsed = parse(item, ipath)
            if parsed is not None:
                out.append(parsed)
        return out


# ------------------------------------------------------------------------------------- sub-parsers


def _proxy_url(r: _Reader, m: Any, path: Path_) -> str:
    value = r.str_(m, "proxy-url", path).strip()
    if not validate_proxy_url(value):
        r.error((*path, "proxy-url"), _PROXY_URL_MESSAGE, m, "proxy-url")
        return ""
    return value


def _prefix(r: _Reader, m: Any, path: Path_) -> str:
    raw = r.str_(m, "prefix", path)
    value = normalize_prefix(raw)
    if raw.strip().strip("/") and not value:
        r.warn((*path, "prefix"), "must be a single path segment (no '/'); ignored", m, "prefix")
    return value


def _headers(r: _Reader, m: Any, path: Path_) -> dict[str, str]:
    hpath = (*path, "headers")
    raw = r.map_(m, "headers", path)
    out: dict[str, str] = {}
    for k, v in raw.items():
        if isinstance(v, Mapping | list):
            r.error((*hpath, str(k)), "must be a string", raw, k)
            continue
        name = ("" if k is None else str(k)).strip()
        value = r.as_str(v, (*hpath, str(k)), raw, k).strip()
        if not name or not value:
            r.warn((*hpath, str(k)), "header with an empty name or value dropped", raw, k)
            continue
        out[name] = value
    return out


def _models(r: _Reader, m: Any, path: Path_) -> tuple[ModelAlias, ...]:
    def parse(item: Any, ipath: Path_) -> ModelAlias:
        name = r.str_(item, "name", ipath).strip()
        return ModelAlias(name=name, alias=r.str_(item, "alias", ipath).strip())

    return tuple(r.items(m, "models", path, parse))


def normalize_excluded(values: Sequence[str]) -> tuple[str, ...]:
    """Trim, lower-case, drop empties, de-duplicate keeping the first occurrence."""
    seen: dict[str, None] = {}
    for v in values:
        v = v.strip().lower()
        if v:
            seen.setdefault(v, None)
    return tuple(seen)


MAX_WEIGHT = 1_000_000
SCOPED_ACTIONS = ("stop", "stop-and-cooldown", "continue", "continue-and-cooldown")


def _weight(r: _Reader, m: Any, path: Path_) -> int:
    """``weight``: absent = 1; zero or negative = 0 (left out of weighted routing); above the maximum = error."""
    if r.raw(m, "weight") in (_ABSENT, None):
        return 1
    value = r.int_(m, "weight", path, default=1)
    if value > MAX_WEIGHT:
        r.error((*path, "weight"), f"must not exceed {MAX_WEIGHT}", m, "weight")
        return MAX_WEIGHT
    return max(value, 0)


def _scoped_errors(r: _Reader, m: Any, path: Path_) -> tuple[RequestScopedErrorRule, ...]:
    """``request-scoped-errors``: rules without a status, an action or a match are dropped (warning)."""

    def parse(item: Any, ipath: Path_) -> RequestScopedErrorRule | None:
        action = r.str_(item, "action", ipath).strip().lower()
        rule = RequestScopedErrorRule(
            status=r.int_(item, "status", ipath),
            match=tuple(v for v in (x.strip() for x in r.str_list(item, "match", ipath)) if v),
            match_regexr=tuple(v for v in (x.strip() for x in r.str_list(item, "match-regexr", ipath)) if v),
            action=action,
        )
        for j, pattern in enumerate(rule.match_regexr):
            try:
                re.compile(pattern)
            except re.error as exc:
                r.warn((*ipath, "match-regexr", j), f"invalid regular expression ({exc}); never matches")
        if action not in SCOPED_ACTIONS:
            r.warn(ipath, f"action must be one of {', '.join(SCOPED_ACTIONS)}; rule dropped")
            return None
        if rule.status <= 0 or not (rule.match or rule.match_regexr):
            r.warn(ipath, "rule without status or match dropped")
            return None
        return rule

    return tuple(r.items(m, "request-scoped-errors", path, parse))


def _listed(r: _Reader, m: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """Claude/Codex/compat entries tell an absent `models` (None) from an empty list, as the reference's
    management API shows them (`null` / `[]`)."""
    if r.raw(m, "models") in (_ABSENT, None):
        fields["models"] = None
    return fields


def _common(r: _Reader, m: Any, path: Path_) -> dict[str, Any]:
    return {
        "api_key": r.str_(m, "api-key", path).strip(),
        "priority": r.int_(m, "priority", path),
        "prefix": _prefix(r, m, path),
        "base_url": r.str_(m, "base-url", path).strip(),
        "proxy_url": _proxy_url(r, m, path),
        "headers": _headers(r, m, path),
        "models": _models(r, m, path),
        "excluded_models": normalize_excluded(r.str_list(m, "excluded-models", path)),
        "weight": _weight(r, m, path),
    }


def _gemini_keys(r: _Reader, root: Any) -> tuple[GeminiKey, ...]:
    seen: dict[str, int] = {}

    def parse(item: Any, ipath: Path_) -> GeminiKey | None:
        entry = GeminiKey(**_common(r, item, ipath), request_scoped_errors=_scoped_errors(r, item, ipath))
        if not entry.api_key:
            r.warn(ipath, "entry without api-key dropped")
            return None
        if entry.api_key in seen:
            r.warn(ipath, f"duplicate api-key (same as {r.fmt(('gemini-api-key', seen[entry.api_key]))}); "
                          "entry dropped")
            return None
        seen[entry.api_key] = int(ipath[-1])
        return entry

    return tuple(r.items(root, "gemini-api-key", (), parse))


def _vertex_keys(r: _Reader, root: Any) -> tuple[VertexKey, ...]:
    seen: dict[tuple[str, str], int] = {}

    def parse(item: Any, ipath: Path_) -> VertexKey | None:
        fields = _common(r, item, ipath)
        models = []
        for j, model in enumerate(fields["models"]):
            if not model.name or not model.alias:
                r.warn((*ipath, "models", j), "model without name or alias dropped")
                continue
            models.append(model)
        fields["models"] = tuple(models)
        entry = VertexKey(**fields)
        if not entry.api_key:
            r.warn(ipath, "entry without api-key dropped")
            return None
        ident = (entry.api_key, entry.base_url)
        if ident in seen:
            first = r.fmt(("vertex-api-key", seen[ident]))
            r.warn(ipath, f"duplicate api-key and base-url (same as {first}); entry dropped")
            return None
        seen[ident] = int(ipath[-1])
        return entry

    return tuple(r.items(root, "vertex-api-key", (), parse))


def _codex_keys(r: _Reader, root: Any) -> tuple[CodexKey, ...]:
    def parse(item: Any, ipath: Path_) -> CodexKey | None:
        entry = CodexKey(**_listed(r, item, _common(r, item, ipath)), websockets=r.bool_(item, "websockets", ipath),
                         request_scoped_errors=_scoped_errors(r, item, ipath))
        if not entry.base_url:
            r.warn(ipath, "entry without base-url dropped")
            return None
        return entry

    return tuple(r.items(root, "codex-api-key", (), parse))


def _cloak(r: _Reader, m: Any, path: Path_) -> ClaudeCloak | None:
    if r.raw(m, "cloak") in (_ABSENT, None):
        return None
    raw = r.map_(m, "cloak", path)
    cpath = (*path, "cloak")
    mode = r.str_(raw, "mode", cpath).strip().lower() or "auto"
    if mode not in ("auto", "always", "never"):
        r.warn((*cpath, "mode"), "must be one of auto, always, never; using auto", raw, "mode")
        mode = "auto"
    cache = r.raw(raw, "cache-user-id")
    return ClaudeCloak(
        mode=mode,
        strict_mode=r.bool_(raw, "strict-mode", cpath),
        sensitive_words=tuple(w for w in (s.strip() for s in r.str_list(raw, "sensitive-words", cpath)) if w),
        cache_user_id=None if cache in (_ABSENT, None) else r.bool_(raw, "cache-user-id", cpath),
    )


def _claude_keys(r: _Reader, root: Any) -> tuple[ClaudeKey, ...]:
    def parse(item: Any, ipath: Path_) -> ClaudeKey:
        return ClaudeKey(**_listed(r, item, _common(r, item, ipath)), cloak=_cloak(r, item, ipath),
                         request_scoped_errors=_scoped_errors(r, item, ipath))

    return tuple(r.items(root, "claude-api-key", (), parse))


def _openai_compat(r: _Reader, root: Any) -> tuple[OpenAICompatibility, ...]:
    def parse_entry(item: Any, ipath: Path_) -> ApiKeyEntry:
        key = r.str_(item, "api-key", ipath).strip()
        return ApiKeyEntry(api_key=key, proxy_url=_proxy_url(r, item, ipath), weight=_weight(r, item, ipath))

    def parse(item: Any, ipath: Path_) -> OpenAICompatibility | None:
        if r.raw(item, "api-keys") is not _ABSENT:
            r.warn((*ipath, "api-keys"), "legacy key ignored; use api-key-entries", item, "api-keys")
        entry = OpenAICompatibility(
            name=r.str_(item, "name", ipath).strip(),
            base_url=r.str_(item, "base-url", ipath).strip(),
            prefix=_prefix(r, item, ipath),
            priority=r.int_(item, "priority", ipath),
            headers=_headers(r, item, ipath),
            models=None if r.raw(item, "models") in (_ABSENT, None) else _models(r, item, ipath),
            api_key_entries=tuple(r.items(item, "api-key-entries", ipath, parse_entry)),
            request_scoped_errors=_scoped_errors(r, item, ipath),
        )
        if not entry.base_url:
            r.warn(ipath, "entry without base-url dropped")
            return None
        return entry

    return tuple(r.items(root, "openai-compatibility", (), parse))


def _ampcode(r: _Reader, root: Any) -> Ampcode:
    path: Path_ = ("ampcode",)
    m = r.map_(root, "ampcode", ())

    def parse_upstream(item: Any, ipath: Path_) -> AmpUpstreamApiKey:
        keys = [k.strip() for k in r.str_list(item, "api-keys", ipath)]
        return AmpUpstreamApiKey(upstream_api_key=r.str_(item, "upstream-api-key", ipath).strip(),
                                 api_keys=tuple(k for k in keys if k))

    def parse_mapping(item: Any, ipath: Path_) -> AmpModelMapping:
        return AmpModelMapping(from_=r.str_(item, "from", ipath).strip(),
                               to=r.str_(item, "to", ipath).strip(),
                               regex=r.bool_(item, "regex", ipath))

    return Ampcode(
        upstream_url=r.str_(m, "upstream-url", path).strip(),
        upstream_api_key=r.str_(m, "upstream-api-key", path).strip(),
        upstream_api_keys=tuple(r.items(m, "upstream-api-keys", path, parse_upstream)),
        restrict_management_to_localhost=r.bool_(m, "restrict-management-to-localhost", path),
        model_mappings=tuple(r.items(m, "model-mappings", path, parse_mapping)),
        force_model_mappings=r.bool_(m, "force-model-mappings", path),
    )


def _oauth_excluded(r: _Reader, root: Any) -> dict[str, tuple[str, ...]]:
    m = r.map_(root, "oauth-excluded-models", ())
    merged: dict[str, list[str]] = {}
    for channel, _value in m.items():
        name = str(channel).strip().lower()
        values = r.str_list(m, channel, ("oauth-excluded-models",))
        if name:
            merged.setdefault(name, []).extend(values)
    out = {k: normalize_excluded(v) for k, v in merged.items()}
    return {k: v for k, v in out.items() if v}


def _oauth_alias(r: _Reader, root: Any) -> dict[str, tuple[OAuthModelAlias, ...]]:
    m = r.map_(root, "oauth-model-alias", ())
    out: dict[str, list[OAuthModelAlias]] = {}
    for channel in list(m.keys()):
        name = str(channel).strip().lower()
        cpath: Path_ = ("oauth-model-alias",)

        def parse(item: Any, ipath: Path_) -> OAuthModelAlias:
            return OAuthModelAlias(name=r.str_(item, "name", ipath).strip(),
                                   alias=r.str_(item, "alias", ipath).strip(),
                                   fork=r.bool_(item, "fork", ipath))

        entries = r.items(m, channel, cpath, parse)
        if not name:
            continue
        kept = out.setdefault(name, [])
        aliases = {e.alias.lower() for e in kept}
        for i, entry in enumerate(entries):
            ipath = (*cpath, str(channel), i)
            if not entry.name or not entry.alias:
                r.warn(ipath, "entry without name or alias dropped")
            elif entry.name.lower() == entry.alias.lower():
                r.warn(ipath, "entry whose alias equals its name dropped")
            elif entry.alias.lower() in aliases:
                r.warn(ipath, "duplicate alias in this channel dropped")
            else:
                aliases.add(entry.alias.lower())
                kept.append(entry)
    return {k: tuple(v) for k, v in out.items() if v}


def _payload(r: _Reader, root: Any) -> Payload:
    path: Path_ = ("payload",)
    m = r.map_(root, "payload", ())

    def models_of(item: Any, ipath: Path_) -> tuple[PayloadModel, ...]:
        def parse(model: Any, mpath: Path_) -> PayloadModel:
            return PayloadModel(name=r.str_(model, "name", mpath).strip(),
                                protocol=r.str_(model, "protocol", mpath).strip().lower())

        return tuple(r.items(item, "models", ipath, parse))

    def rules(key: str, raw_json: bool) -> tuple[PayloadRule, ...]:
        def parse(item: Any, ipath: Path_) -> PayloadRule | None:
            models = models_of(item, ipath)
            params = to_plain(r.map_(item, "params", ipath))
            if raw_json:
                for value in params.values():
                    if isinstance(value, str):
                        try:
                            json.loads(value)
                        except ValueError:
                            r.warn(ipath, "payload rule dropped: invalid raw JSON")
                            return None
            return PayloadRule(models=models, params=params)

        return tuple(r.items(m, key, path, parse))

    def parse_filter(item: Any, ipath: Path_) -> PayloadFilterRule:
        params = tuple(p.strip() for p in r.str_list(item, "params", ipath) if p.strip())
        return PayloadFilterRule(models=models_of(item, ipath), params=params)

    return Payload(
        default=rules("default", False),
        default_raw=rules("default-raw", True),
        override=rules("override", False),
        override_raw=rules("override-raw", True),
        filter=tuple(r.items(m, "filter", path, parse_filter)),
    )


def _api_keys(r: _Reader, root: Any) -> tuple[str, ...]:
    raw = r.raw(root, "api-keys")
    values = r.str_list(root, "api-keys", ())
    out: dict[str, None] = {}
    for i, value in enumerate(values):
        key = value.strip()
        if key in EXAMPLE_SAMPLE_API_KEYS:
            r.error(("api-keys", i), "this is the example config's sample key; replace it", raw, i)
        if key:
            out.setdefault(key, None)
    return tuple(out)


def _trusted_proxies(r: _Reader, root: Any) -> tuple[str, ...]:
    raw = r.raw(root, "trusted-proxies")
    out: list[str] = []
    for i, value in enumerate(r.str_list(root, "trusted-proxies", ())):
        value = value.strip()
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            r.error(("trusted-proxies", i), f"not a valid IP address or CIDR network: {value!r}", raw, i)
            continue
        text = str(net)
        if text not in out:
            out.append(text)
    return tuple(out)


def _positive_number(r: _Reader, m: Any, key: str, path: Path_, default: float,
                     allow_zero: bool = False) -> float:
    v = r.as_number(r.raw(m, key), (*path, key), m, key, default)
    if v is None:
        return default
    if v < 0 or (v == 0 and not allow_zero):
        r.error((*path, key), "must be a non-negative number" if allow_zero else "must be a positive number",
                m, key)
        return default
    return v


# ------------------------------------------------------------------------------------------ top level

_KNOWN_TOP = set(config_yaml_keys()) - {"config-version"}


def _build(r: _Reader, root: Mapping[Any, Any], config_version: int) -> Config:
    tls_m = r.map_(root, "tls", ())
    tls = TLSConfig(enable=r.bool_(tls_m, "enable", ("tls",)), cert=r.str_(tls_m, "cert", ("tls",)).strip(),
                    key=r.str_(tls_m, "key", ("tls",)).strip())
    if tls.enable and (not tls.cert or not tls.key):
        r.error(("tls",), "cert and key are required when enable is true", root, "tls")

    rm_path: Path_ = ("remote-management",)
    rm_m = r.map_(root, "remote-management", ())
    remote = RemoteManagement(
        allow_remote=r.bool_(rm_m, "allow-remote", rm_path),
        secret_key=r.str_(rm_m, "secret-key", rm_path).strip(),
        disable_control_panel=r.bool_(rm_m, "disable-control-panel", rm_path),
        panel_github_repository=(r.str_(rm_m, "panel-github-repository", rm_path).strip()
                                 or DEFAULT_PANEL_REPOSITORY),
    )

    port = r.as_int(r.raw(root, "port"), ("port",), root, "port", 8317)
    if port is None:
        port = 8317
    elif not 1 <= port <= 65535:
        r.error(("port",), "must be between 1 and 65535", root, "port")

    pp_m = r.map_(root, "pprof", ())
    pprof = Pprof(enable=r.bool_(pp_m, "enable", ("pprof",)),
                  addr=r.str_(pp_m, "addr", ("pprof",)).strip() or DEFAULT_PPROF_ADDR)

    qe_m = r.map_(root, "quota-exceeded", ())
    quota = QuotaExceeded(switch_project=r.bool_(qe_m, "switch-project", ("quota-exceeded",)),
                          switch_preview_model=r.bool_(qe_m, "switch-preview-model", ("quota-exceeded",)))

    ro_m = r.map_(root, "routing", ())
    raw_strategy = r.str_(ro_m, "strategy", ("routing",))
    strategy = normalize_routing_strategy(raw_strategy)
    if strategy is None:
        r.error(("routing", "strategy"), "must be one of round-robin, fill-first, weighted-round-robin", ro_m,
                "strategy")
        strategy = "round-robin"

    st_m = r.map_(root, "streaming", ())
    streaming = Streaming(keepalive_seconds=r.nonneg_int(st_m, "keepalive-seconds", ("streaming",), 0),
                          bootstrap_retries=r.nonneg_int(st_m, "bootstrap-retries", ("streaming",), 0))

    chd_m = r.map_(root, "claude-header-defaults", ())
    chd_p: Path_ = ("claude-header-defaults",)
    claude_hd = ClaudeHeaderDefaults(
        user_agent=r.str_(chd_m, "user-agent", chd_p).strip(),
        package_version=r.str_(chd_m, "package-version", chd_p).strip(),
        runtime_version=r.str_(chd_m, "runtime-version", chd_p).strip(),
        timeout=r.str_(chd_m, "timeout", chd_p).strip(),
    )
    cxd_m = r.map_(root, "codex-header-defaults", ())
    cxd_p: Path_ = ("codex-header-defaults",)
    codex_hd = CodexHeaderDefaults(user_agent=r.str_(cxd_m, "user-agent", cxd_p).strip(),
                                   beta_features=r.str_(cxd_m, "beta-features", cxd_p).strip())

    body_limit = r.as_int(r.raw(root, "request-body-limit-mb"), ("request-body-limit-mb",), root,
                          "request-body-limit-mb", 32)
    if body_limit is None:
        body_limit = 32
    elif body_limit < 1:
        r.error(("request-body-limit-mb",), "must be an integer >= 1", root, "request-body-limit-mb")
        body_limit = 32

    ut_m = r.map_(root, "upstream-timeouts", ())
    ut_p: Path_ = ("upstream-timeouts",)
    timeouts = UpstreamTimeouts(
        connect_seconds=_positive_number(r, ut_m, "connect-seconds", ut_p, 10),
        first_byte_seconds=_positive_number(r, ut_m, "first-byte-seconds", ut_p, 300),
        idle_seconds=_positive_number(r, ut_m, "idle-seconds", ut_p, 300),
    )

    for key, target in LEGACY_KEYS.items():
        if key in root:
            r.warn((key,), f"legacy key ignored (not read since v6.9.0); move the setting to {target}",
                   root, key)

    extra = {str(k): to_plain(v) for k, v in root.items()
             if str(k) not in _KNOWN_TOP and str(k) not in LEGACY_KEYS and str(k) != "config-version"}

    return Config(
        host=r.str_(root, "host", ()).strip(),
        port=port,
        tls=tls,
        remote_management=remote,
        auth_dir=r.str_(root, "auth-dir", ()).strip(),
        api_keys=_api_keys(r, root),
        debug=r.bool_(root, "debug", ()),
        pprof=pprof,
        commercial_mode=r.bool_(root, "commercial-mode", ()),
        logging_to_file=r.bool_(root, "logging-to-file", ()),
        logs_max_total_size_mb=r.nonneg_int(root, "logs-max-total-size-mb", (), 0),
        error_logs_max_files=r.nonneg_int(root, "error-logs-max-files", (), 10, negative=10),
        usage_statistics_enabled=r.bool_(root, "usage-statistics-enabled", ()),
        disable_cooling=r.bool_(root, "disable-cooling", ()),
        request_log=r.bool_(root, "request-log", ()),
        proxy_url=_proxy_url(r, root, ()),
        force_model_prefix=r.bool_(root, "force-model-prefix", ()),
        passthrough_headers=r.bool_(root, "passthrough-headers", ()),
        request_retry=r.nonneg_int(root, "request-retry", (), 3),
        max_retry_credentials=r.nonneg_int(root, "max-retry-credentials", (), 0),
        max_retry_interval=r.nonneg_int(root, "max-retry-interval", (), 30),
        quota_exceeded=quota,
        routing=Routing(strategy=strategy),  # type: ignore[arg-type]
        ws_auth=r.bool_(root, "ws-auth", ()),
        nonstream_keepalive_interval=r.nonneg_int(root, "nonstream-keepalive-interval", (), 0),
        streaming=streaming,
        gemini_api_key=_gemini_keys(r, root),
        codex_api_key=_codex_keys(r, root),
        claude_api_key=_claude_keys(r, root),
        openai_compatibility=_openai_compat(r, root),
        vertex_api_key=_vertex_keys(r, root),
        claude_header_defaults=claude_hd,
        codex_header_defaults=codex_hd,
        ampcode=_ampcode(r, root),
        oauth_excluded_models=_oauth_excluded(r, root),
        oauth_model_alias=_oauth_alias(r, root),
        payload=_payload(r, root),
        request_body_limit_mb=body_limit,
        trusted_proxies=_trusted_proxies(r, root),
        upstream_timeouts=timeouts,
        shutdown_grace_seconds=_positive_number(r, root, "shutdown-grace-seconds", (), 30, allow_zero=True),
        max_cooldown_seconds=_positive_number(r, root, "max-cooldown-seconds", (), 1800),
        config_version=config_version,
        extra=extra,
    )


def _syntax_problem(exc: Exception) -> Problem:
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        what = "; ".join(str(x) for x in (exc.context, exc.problem) if x) or type(exc).__name__
        dup = _DUPLICATE_KEY.search(str(exc.problem or ""))
        if dup is not None:  # ruamel's message quotes both values, which may be secrets
            what = f"duplicate key {dup.group(1)!r}"
        if mark is not None:
            return Problem("", f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {what}",
                           line=mark.line + 1)
        return Problem("", f"YAML syntax error: {what}")
    return Problem("", f"cannot parse YAML ({type(exc).__name__})")


def _parse(text: str, digest: str) -> LoadResult:
    """The fast path: plain values built from libyaml's events (fastyaml; ruamel's safe loader for what it leaves
    out), several times faster than the round-trip parser; any syntax error or problem found re-runs the
    round-trip path, whose nodes know their lines."""
    try:
        plain = load_plain(text)
    except Exception:  # anchors, tags, bad syntax…: ruamel's safe loader, then the round-trip path words errors
        try:
            plain = YAML(typ="safe", pure=False).load(text)
        except Exception:  # syntax errors and exotic input: the precise path words them
            return _parse_round_trip(text, digest)
    if plain is None:
        plain = {}
    if not isinstance(plain, dict):
        return _parse_round_trip(text, digest)
    result = _validated(plain, _Reader(fast=True), digest)
    if result.problems:
        return _parse_round_trip(text, digest)
    return attrs.evolve(result, text=text)


def _parse_round_trip(text: str, digest: str) -> LoadResult:
    try:
        document = ConfigDocument.parse(text)
    except TypeError:
        return LoadResult(None, None, (Problem("", "top level must be a mapping"),), digest)
    except (YAMLError, ValueError) as exc:
        return LoadResult(None, None, (_syntax_problem(exc),), digest)
    except Exception as exc:  # ruamel raises assorted errors for exotic input
        return LoadResult(None, None, (_syntax_problem(exc),), digest)

    result = _validated(document.root, _Reader(), digest)
    return LoadResult(result.config, document, result.problems, digest)


def _validated(root: Mapping[Any, Any], reader: _Reader, digest: str) -> LoadResult:
    config_version = 0
    raw_version = root.get("config-version", _ABSENT)
    if raw_version is not _ABSENT:
        parsed = reader.as_int(raw_version, ("config-version",), root, "config-version", 0)
        config_version = parsed or 0
    if config_version >= 8:
        flat, aliases, notes = translate_v8(root)
        reader.aliases.update(aliases)
        for path, message in notes:
            reader.warn(path, message)
        root = flat

    config = _build(reader, root, config_version)
    problems = tuple(reader.problems)
    failed = any(p.severity == "error" for p in problems)
    return LoadResult(None if failed else config, None, problems, digest)


def parse_config_text(text: str, source: str = "<string>") -> LoadResult:
    """Validate YAML text. ``source`` names the origin (only used for context by callers)."""
    del source
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return _parse(text, digest)


def parse_config_bytes(data: bytes, source: str = "<bytes>") -> LoadResult:
    """Validate raw file content (UTF-8, optional BOM); ``sha256`` is taken over ``data``."""
    del source
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return LoadResult(None, None, (Problem("", f"file is not valid UTF-8 (byte {exc.start})"),), digest)
    return _parse(text, digest)


def load_config(path: Path) -> LoadResult:
    """Read and validate a config file; an empty file yields the defaults."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return LoadResult(None, None, (Problem("", f"cannot read {path}: {reason}"),),
                          hashlib.sha256(b"").hexdigest())
    return parse_config_bytes(data, str(path))
