"""The model registry's run-based index: the same routes and listing as one route per credential and model."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proxyd.credentials.model import Credential, ModelMapping
from proxyd.models.registry import ModelRegistry
from proxyd.protocols.base import WireProtocol


def _oracle(credentials: list[Credential], force_model_prefix: bool) -> tuple[dict[str, list[tuple[str, Any]]],
                                                                                list[tuple[str, str]]]:
    """The index written the plain way: every credential, every exposed name, in order."""
    routes: dict[str, list[tuple[str, Any]]] = {}
    last: dict[str, str] = {}
    for cred in credentials:
        pools: dict[str, list[str]] = {}
        for mapping in cred.models:
            pool = pools.setdefault(mapping.exposed, [])
            if mapping.upstream not in pool:
                pool.append(mapping.upstream)
        seen: set[str] = set()
        for exposed, pool in pools.items():
            names = [f"{cred.prefix}/{exposed}"] if cred.prefix else [exposed]
            if cred.prefix and (not force_model_prefix or exposed == cred.prefix):
                names.append(exposed)
            for name in names:
                if name in seen:
                    continue
                seen.add(name)
                found = routes.setdefault(name, [])
                if all(cid != cred.id for cid, _ in found):
                    found.append((cred.id, tuple(pool)))
                last[name] = cred.owned_by
    return routes, list(last.items())


_models = st.lists(st.builds(ModelMapping, upstream=st.sampled_from("abc"), exposed=st.sampled_from(["x", "X", "y"])),
                   max_size=3).map(tuple)


@st.composite
def _credentials(draw: st.DrawFn) -> list[Credential]:
    shared = draw(st.lists(_models, min_size=1, max_size=3))  # one entry's keys share their models tuple
    out = []
    for n in range(draw(st.integers(0, 9))):
        out.append(Credential(
            id=f"c{draw(st.integers(0, 5))}", kind="k", provider="p", protocol=WireProtocol.OPENAI_CHAT,
            base_url="", prefix=draw(st.sampled_from(["", "", "team", "x"])), models=draw(st.sampled_from(shared)),
            owned_by=f"o{n}"))
    return out


@settings(max_examples=300, deadline=None)
@given(_credentials(), st.booleans())
def test_routes_and_listing_match_one_route_per_credential(credentials: list[Credential], force: bool) -> None:
    expected, listing = _oracle(credentials, force)
    registry = ModelRegistry(credentials, force_model_prefix=force, created=1)
    for name, routes in expected.items():
        got = registry.routes(name)
        assert [(r.credential.id, r.upstream_models) for r in got] == routes
        assert registry.routes(name) == got  # made once, then served from the cache
    assert [(m.id, m.owned_by) for m in registry.list_models()] == listing
    assert registry.routes("absent") == []


def test_keys_of_one_entry_share_one_index_entry() -> None:
    models = (ModelMapping(upstream="gpt-4o", exposed="fast"), ModelMapping(upstream="gpt-4o-mini", exposed="fast"))
    creds = [Credential(id=f"k{i}", kind="k", provider="p", protocol=WireProtocol.OPENAI_CHAT, base_url="",
                        models=models) for i in range(100)]
    registry = ModelRegistry(creds)
    assert len(registry._segments["fast"]) == 1 and not registry._routes  # no Route objects before a look-up
    routes = registry.routes("FAST")  # case-insensitive look-up expands the canonical id
    assert [r.credential.id for r in routes] == [f"k{i}" for i in range(100)]
    assert {r.upstream_models for r in routes} == {("gpt-4o", "gpt-4o-mini")}
    routes.clear()  # callers get a copy
    assert len(registry.routes("fast")) == 100
