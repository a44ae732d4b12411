"""Scalar setting endpoints (management.md §3.5), ``latest-version`` (§3.6) and ``model-definitions`` (§3.11).

Each setting answers ``GET`` with ``{"<name>": value}`` and takes ``PUT``/``PATCH`` (identical) with
``{"value": …}``: a missing or ill-typed value is ``400 {"error":"invalid body"}``; success is
``200 {"status":"ok"}`` once the file is written and the new configuration is in effect. ``DELETE`` on
``/proxy-url`` sets it to ``""``. Values are validated by the config loader before anything is written, so
``PUT /proxy-url {"value":"ftp://x"}`` is refused (``422 invalid_config``) instead of being stored as the
reference does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from aiohttp import web

from proxyd import __version__
from proxyd.config import Config
from proxyd.config.load import normalize_routing_strategy
from proxyd.keys import CONFIG_STORE
from proxyd.management.persist import BadBody, Refusal, commit, read_json
from proxyd.models import catalog

__all__ = ["SCALARS", "Scalar", "route_defs"]

Handler = Callable[[web.Request], Any]
Wrap = Callable[[Handler], Handler]


def _negative_to(replacement: int) -> Callable[[Any], Any]:
    def fix(value: Any) -> Any:
        return replacement if value < 0 else value

    return fix


def _strategy(value: Any) -> Any:
    canonical = normalize_routing_strategy(value)
    if canonical is None:
        raise BadBody("invalid strategy")
    return canonical


@attrs.frozen
class Scalar:
    """One scalar setting: URL path, YAML key path, JSON key of the GET answer, value type, normalizer."""

    route: str
    path: tuple[str, ...]
    kind: type
    answer_key: str = ""
    normalize: Callable[[Any], Any] | None = None
    deletable: bool = False

    @property
    def key(self) -> str:
        """The key of the GET answer (the last YAML key unless overridden)."""
        return self.answer_key or self.path[-1]

    def read(self, config: Config) -> Any:
        """The setting's value in a snapshot."""
        node: Any = config
        for part in self.path:
            node = getattr(node, part.replace("-", "_"))
        return node


SCALARS: tuple[Scalar, ...] = (
    Scalar("debug", ("debug",), bool),
    Scalar("logging-to-file", ("logging-to-file",), bool),
    Scalar("logs-max-total-size-mb", ("logs-max-total-size-mb",), int, normalize=_negative_to(0)),
    Scalar("error-logs-max-files", ("error-logs-max-files",), int, normalize=_negative_to(10)),
    Scalar("usage-statistics-enabled", ("usage-statistics-enabled",), bool),
    Scalar("proxy-url", ("proxy-url",), str, normalize=str.strip, deletable=True),
    Scalar("quota-exceeded/switch-project", ("quota-exceeded", "switch-project"), bool),
    Scalar("quota-exceeded/switch-preview-model", ("quota-exceeded", "switch-preview-model"), bool),
    Scalar("request-log", ("request-log",), bool),
    Scalar("ws-auth", ("ws-auth",), bool),
    Scalar("request-retry", ("request-retry",), int),
    Scalar("max-retry-interval", ("max-retry-interval",), int),
    Scalar("force-model-prefix", ("force-model-prefix",), bool),
    Scalar("routing/strategy", ("routing", "strategy"), str, normalize=_strategy),
)


def _typed(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str)


def _getter(setting: Scalar) -> Handler:
    async def get(request: web.Request) -> web.StreamResponse:
        return web.json_response({setting.key: setting.read(request.app[CONFIG_STORE].current)})

    get.__name__ = f"get_{setting.route.replace('/', '_').replace('-', '_')}"
    return get


def _setter(setting: Scalar) -> Handler:
    async def put(request: web.Request) -> web.StreamResponse:
        try:
            body = await read_json(request)
            if not isinstance(body, dict) or not _typed(body.get("value"), setting.kind):
                raise BadBody()
            value = body["value"]
            if setting.normalize is not None:
                value = setting.normalize(value)
        except Refusal as refusal:
            return refusal.response()
        return await commit(request, lambda _config: {setting.path: value}, setting.route)

    put.__name__ = f"put_{setting.route.replace('/', '_').replace('-', '_')}"
    return put


def _deleter(setting: Scalar) -> Handler:
    async def delete(request: web.Request) -> web.StreamResponse:
        return await commit(request, lambda _config: {setting.path: ""}, setting.route)

    delete.__name__ = f"delete_{setting.route.replace('/', '_').replace('-', '_')}"
    return delete


# --------------------------------------------------------------------------------------- latest-version


async def get_latest_version(request: web.Request) -> web.StreamResponse:
    """``GET /latest-version``: proxyd never calls out to check; it reports the running version."""
    del request
    return web.json_response({
        "latest-version": __version__,
        "current-version": __version__,
        "checked": False,
        "message": "proxyd does not check for new releases (no outbound network access); "
                   "latest-version is the running version",
    })


# ------------------------------------------------------------------------------------ model-definitions

# Reference channel → section of proxyd/data/catalog.json (channels proxyd ships no catalogue for are empty).
_CHANNEL_SECTIONS: dict[str, str | None] = {
    "claude": "claude",
    "gemini": "gemini",
    "vertex": "vertex",
    "gemini-cli": "gemini-cli",
    "aistudio": "gemini",
    "codex": "codex-pro",
    "qwen": None,
    "iflow": None,
    "kimi": None,
    "antigravity": None,
}


def _model_info(entry: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": entry.get("id"), "object": "model"}
    out.update({k: v for k, v in entry.items() if k not in ("id", "object")})
    return out


async def get_model_definitions(request: web.Request) -> web.StreamResponse:
    """``GET /model-definitions/{channel}`` (or ``?channel=``): the built-in catalogue of one channel."""
    channel = (request.match_info.get("channel") or request.query.get("channel", "")).strip().lower()
    if channel not in _CHANNEL_SECTIONS:
        return web.json_response({"error": "unknown channel", "channel": channel}, status=400)
    section = _CHANNEL_SECTIONS[channel]
    models = [_model_info(e) for e in catalog.section(section)] if section else []
    return web.json_response({"channel": channel, "models": models})


# -------------------------------------------------------------------------------------------- routes


def route_defs(prefix: str, wrap: Wrap) -> list[web.AbstractRouteDef]:
    """The route definitions of this module, each handler wrapped by ``wrap`` (the management guard)."""
    defs: list[web.AbstractRouteDef] = []
    for setting in SCALARS:
        path = f"{prefix}/{setting.route}"
        setter = wrap(_setter(setting))
        defs += [web.get(path, wrap(_getter(setting)), allow_head=False), web.put(path, setter),
                 web.patch(path, setter)]
        if setting.deletable:
            defs.append(web.delete(path, wrap(_deleter(setting))))
    defs += [
        web.get(f"{prefix}/latest-version", wrap(get_latest_version), allow_head=False),
        web.get(f"{prefix}/model-definitions", wrap(get_model_definitions), allow_head=False),
        web.get(f"{prefix}/model-definitions/{{channel}}", wrap(get_model_definitions), allow_head=False),
    ]
    return defs
