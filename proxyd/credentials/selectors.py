"""Credential ordering strategies (`routing.strategy`): round-robin and fill-first, priority first."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Protocol

from proxyd.models.registry import Route


class Selector(Protocol):
    """Orders the routes of one request: the first is tried first."""

    name: str

    def order(self, model: str, routes: list[Route]) -> list[Route]: ...

    def picked(self, model: str, route: Route) -> None:
        """The dispatch stage is about to try `route` (round-robin moves its cursor past it)."""
        ...


def _by_priority(routes: list[Route]) -> list[list[Route]]:
    groups: dict[int, list[Route]] = defaultdict(list)
    for route in routes:
        groups[route.credential.priority].append(route)
    return [sorted(groups[p], key=lambda r: r.credential.id) for p in sorted(groups, reverse=True)]


class FillFirstSelector:
    """Burn the lowest-id credential of the best priority until it fails, then the next."""

    name = "fill-first"

    def order(self, model: str, routes: list[Route]) -> list[Route]:
        return list(itertools.chain.from_iterable(_by_priority(routes)))

    def picked(self, model: str, route: Route) -> None:
        return None


class RoundRobinSelector:
    """Rotate the starting credential per (model, priority): the cursor moves past every credential tried, as the
    reference's scheduler does per pick, so a request that tried both of two keys leaves the next one starting
    where the rotation stands rather than one step further."""

    name = "round-robin"

    def __init__(self) -> None:
        self._cursors: dict[tuple[str, int], int] = defaultdict(int)
        self._positions: dict[tuple[str, int], dict[str, int]] = {}  # credential id → index in its sorted group

    def order(self, model: str, routes: list[Route]) -> list[Route]:
        ordered: list[Route] = []
        for group in _by_priority(routes):
            key = (model, group[0].credential.priority)
            start = self._cursors[key] % len(group)
            self._cursors[key] = start + 1
            if len(group) > 1:
                self._positions[key] = {r.credential.id: i for i, r in enumerate(group)}
            ordered.extend(group[start:] + group[:start])
        return ordered

    def picked(self, model: str, route: Route) -> None:
        key = (model, route.credential.priority)
        position = self._positions.get(key, {}).get(route.credential.id)
        if position is not None:
            self._cursors[key] = position + 1


def make_selector(strategy: str) -> Selector:
    return FillFirstSelector() if strategy == "fill-first" else RoundRobinSelector()


class PoolRotation:
    """Rotates an alias pool's upstream names per (credential, model) on every request (routing.md §3.8)."""

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str], int] = defaultdict(int)

    def order(self, credential_id: str, model: str, pool: tuple[str, ...]) -> tuple[str, ...]:
        if len(pool) < 2:
            return pool
        key = (credential_id, model)
        start = self._counters[key] % len(pool)
        self._counters[key] = start + 1
        return pool[start:] + pool[:start]
