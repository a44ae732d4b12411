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


class WeightedRoundRobinSelector:
    """Smooth weighted round-robin per (model, priority), as the reference's `weighted-round-robin`: every request
    adds each credential's `weight` to its running score and starts with the highest score (the first by id on a
    tie), which then gives back the group's total weight, so weights 3:1 give 1,1,2,1,1,1,2,1. Credentials with
    weight 0 are left out. The scores restart when the group's weights change (a key added, removed or
    re-weighted). Failover within a request takes the others by score and moves no score."""

    name = "weighted-round-robin"

    def __init__(self) -> None:
        self._weights: dict[tuple[str, int], dict[str, int]] = {}
        self._scores: dict[tuple[str, int], dict[str, int]] = {}

    def order(self, model: str, routes: list[Route]) -> list[Route]:
        ordered: list[Route] = []
        for group in _by_priority([r for r in routes if r.credential.weight > 0]):
            ordered.extend(self._rotate((model, group[0].credential.priority), group))
        return ordered

    def _rotate(self, key: tuple[str, int], group: list[Route]) -> list[Route]:
        weights = {r.credential.id: r.credential.weight for r in group}
        if self._weights.get(key) != weights:
            self._weights[key] = weights
            self._scores[key] = dict.fromkeys(weights, 0)
        scores = self._scores[key]
        for cid, weight in weights.items():
            scores[cid] += weight
        best = max(group, key=lambda r: scores[r.credential.id])  # max keeps the first of equal scores
        scores[best.credential.id] -= sum(weights.values())
        rest = sorted((r for r in group if r is not best), key=lambda r: -scores[r.credential.id])
        return [best, *rest]

    def picked(self, model: str, route: Route) -> None:
        return None


def make_selector(strategy: str) -> Selector:
    if strategy == "fill-first":
        return FillFirstSelector()
    if strategy == "weighted-round-robin":
        return WeightedRoundRobinSelector()
    return RoundRobinSelector()


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
