"""Model registry: client-visible ids (aliases, prefixes) → the credentials and upstream names serving them."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
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


Pool = tuple[str, tuple[str, ...], Mapping[str, Any]]


def _pools(models: Iterable[ModelMapping]) -> list[Pool]:
    """A credential's models grouped by exposed name: the upstream names to try (a pool) and the first entry's
    catalogue metadata."""
    pools: dict[str, list[str]] = {}
    infos: dict[str, Mapping[str, Any]] = {}
    for mapping in models:
        pool = pools.setdefault(mapping.exposed, [])
        if mapping.upstream not in pool:
            pool.append(mapping.upstream)
        infos.setdefault(mapping.exposed, mapping.info or {})
    return [(exposed, tuple(pool), infos[exposed]) for exposed, pool in pools.items()]


# The credentials of a run (consecutive credentials of one config entry) and the upstream names one of them serves.
Segment = tuple[Sequence[Credential], tuple[str, ...]]


def _runs(credentials: Iterable[Credential]) -> Iterator[tuple[list[Credential], bool]]:
    """Consecutive credentials sharing their `models` tuple and prefix (one config entry's keys), as lists; a
    credential whose id was seen before comes alone, flagged (it adds only the routes it lacks)."""
    seen: set[str] = set()
    run: list[Credential] = []
    for cred in credentials:
        repeated = cred.id in seen
        seen.add(cred.id)
        if run and not repeated and cred.models is run[0].models and cred.prefix == run[0].prefix:
            run.append(cred)
            continue
        if run:
            yield run, False
            run = []
        if repeated:
            yield [cred], True
        else:
            run = [cred]
    if run:
        yield run, False


class ModelRegistry:
    """An immutable index built from a credential set; rebuilt (cheaply) on every reload.

    Each model id keeps the runs of credentials serving it (one entry per config entry, not per key); the
    :class:`Route` list of an id is made on its first look-up. A reload with thousands of keys thus builds a few
    thousand index entries instead of one object per key and model.
    """

    def __init__(self, credentials: Iterable[Credential], *, force_model_prefix: bool = False,
                 created: int | None = None) -> None:
        self._created = int(created if created is not None else time.time())
        self._segments: dict[str, list[Segment]] = {}
        self._routes: dict[str, list[Route]] = {}  # made on first look-up
        self._lower: dict[str, str] = {}
        # Model id → the credential and catalogue entry that registered it last (the reference lets the last
        # registration win); ModelInfo objects are made once per id at the end, not once per credential.
        last: dict[str, tuple[Credential, Mapping[str, Any]]] = {}
        # Credentials of one config entry share their `models` tuple: group it into pools once per tuple.
        grouped: dict[int, list[Pool]] = {}
        segments = self._segments
        for run, repeated in _runs(credentials):
            cred = run[0]
            key = id(cred.models)
            pools = grouped.get(key)
            if pools is None:
                pools = grouped[key] = _pools(cred.models)
            seen: set[str] = set()
            for exposed, pool, info in pools:
                if cred.prefix:
                    names: tuple[str, ...] = (f"{cred.prefix}/{exposed}",)
                    if not force_model_prefix or exposed == cred.prefix:
                        names += (exposed,)
                else:
                    names = (exposed,)
                for name in names:
                    if name in seen:
                        continue
                    seen.add(name)
                    found = segments.get(name)
                    if found is None:
                        segments[name] = [(run, pool)]
                        self._lower.setdefault(name.lower(), name)
                    elif not repeated or all(c.id != cred.id for creds, _ in found for c in creds):
                        found.append((run, pool))
                    last[name] = (run[-1], info)  # the first registration keeps its place in the listing
        self._info: dict[str, ModelInfo] = {name: self._model_info(name, cred, info)
                                            for name, (cred, info) in last.items()}

    def _model_info(self, model_id: str, cred: Credential, info: Mapping[str, Any]) -> ModelInfo:
        created = info.get("created")
        return ModelInfo(
            id=model_id,
            owned_by=str(info.get("owned_by") or cred.owned_by or cred.provider),
            created=created if isinstance(created, int) and created > 0 else self._created,
            display_name=str(info.get("display_name") or ""),
            details=info,
        )

    def routes(self, model: str) -> list[Route]:
        """Every credential serving `model` (exact id first, then case-insensitively), in config order."""
        found = self._routes.get(model)
        if found is None:
            name = model if model in self._segments else self._lower.get(model.lower())
            if name is None:
                return []
            found = self._routes.get(name)
            if found is None:
                found = self._routes[name] = [Route(c, pool) for creds, pool in self._segments[name] for c in creds]
        return list(found)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and bool(self.routes(model))

    def list_models(self) -> list[ModelInfo]:
        """Every routable model id, in registration order."""
        return list(self._info.values())
