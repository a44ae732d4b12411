"""Model registry: client-visible ids (aliases, prefixes) → the credentials and upstream names serving them."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from proxyd.credentials.model import Credential, ModelMapping


@attrs.frozen
class Route:
    """One credential that serves a requested model, with the upstream names to try in order (a pool)."""

    credential: Credential
    upstream_models: tuple[str, ...]

    def mapping_for(self, upstream: str) -> ModelMapping | None:
        """The credential's model entry for one upstream name (catalogue metadata, user-defined flag)."""
        for mapping in self.credential.models:
            if mapping.upstream == upstream:
                return mapping
        return None


@attrs.frozen
class ModelInfo:
    """A listed model; `details` holds catalogue metadata (Gemini listing fields, limits, thinking ranges)."""

    id: str
    owned_by: str
    created: int
    display_name: str = ""
    details: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


class ModelRegistry:
    """An immutable index built from a credential set; rebuilt (cheaply) on every reload."""

    def __init__(self, credentials: Iterable[Credential], *, force_model_prefix: bool = False,
                 created: int | None = None) -> None:
        self._created = int(created if created is not None else time.time())
        self._routes: dict[str, list[Route]] = {}
        self._route_ids: dict[str, set[str]] = {}  # credential ids per model, so registration stays linear
        self._lower: dict[str, str] = {}
        self._info: dict[str, ModelInfo] = {}
        for cred in credentials:
            pools: dict[str, list[str]] = {}
            infos: dict[str, Mapping[str, Any]] = {}
            for mapping in cred.models:
                pool = pools.setdefault(mapping.exposed, [])
                if mapping.upstream not in pool:
                    pool.append(mapping.upstream)
                infos.setdefault(mapping.exposed, mapping.info or {})
            for exposed, pool in pools.items():
                names: list[str] = []
                if cred.prefix:
                    names.append(f"{cred.prefix}/{exposed}")
                if not cred.prefix or not force_model_prefix or exposed == cred.prefix:
                    names.append(exposed)
                for name in names:
                    self._add(name, Route(cred, tuple(pool)), self._model_info(name, cred, infos[exposed]))

    def _model_info(self, model_id: str, cred: Credential, info: Mapping[str, Any]) -> ModelInfo:
        created = info.get("created")
        return ModelInfo(
            id=model_id,
            owned_by=str(info.get("owned_by") or cred.owned_by or cred.provider),
            created=created if isinstance(created, int) and created > 0 else self._created,
            display_name=str(info.get("display_name") or ""),
            details=info,
        )

    def _add(self, model_id: str, route: Route, info: ModelInfo) -> None:
        ids = self._route_ids.setdefault(model_id, set())
        if route.credential.id not in ids:
            ids.add(route.credential.id)
            self._routes.setdefault(model_id, []).append(route)
        self._lower.setdefault(model_id.lower(), model_id)
        self._info[model_id] = info  # the last registration wins, as in the reference

    def routes(self, model: str) -> list[Route]:
        """Every credential serving `model` (exact id first, then case-insensitively), in config order."""
        found = self._routes.get(model)
        if found is None:
            canonical = self._lower.get(model.lower())
            found = self._routes.get(canonical, []) if canonical else []
        return list(found)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and bool(self.routes(model))

    def list_models(self) -> list[ModelInfo]:
        """Every routable model id, in registration order."""
        return list(self._info.values())
