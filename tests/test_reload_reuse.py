"""A reload carries the unchanged parts over: config entries (proxyd/config/share.py), the objects a forked
child sends back by name (proxyd/childcall.py) and the credentials of unchanged entries (from_config.py)."""

from __future__ import annotations

import attrs
import pytest
from fakes import FakeOpenAIUpstream

from proxyd.childcall import call_in_child
from proxyd.config import store as store_module
from proxyd.config.load import parse_config_text
from proxyd.config.model import Config
from proxyd.config.share import identical, share_unchanged, shared_parts
from proxyd.credentials.from_config import credentials_from_config
from proxyd.keys import CONFIG_STORE, RUNTIME
from proxyd.runtime import build_index


def _config(text: str) -> Config:
    result = parse_config_text(text)
    assert result.ok and result.config is not None, result.problems
    return result.config


def _provider(name: str, keys: list[str], alias: str = "a", base: str = "http://127.0.0.1:9/v1") -> str:
    entries = "".join(f'      - api-key: "{k}"\n' for k in keys)
    return (f'  - name: "{name}"\n    base-url: "{base}"\n    api-key-entries:\n{entries}'
            f'    models:\n      - name: "gpt-4o"\n        alias: "{alias}"\n')


def _text(providers: list[str], extra: str = "") -> str:
    return 'api-keys: ["k"]\n' + extra + "openai-compatibility:\n" + "".join(providers)


def test_identical_tells_apart_what_equality_does_not() -> None:
    assert identical({"a": [1, "x"], "b": None}, {"a": [1, "x"], "b": None})
    assert 1 == 1.0 == True  # equal for Python
    assert not identical(1, 1.0) and not identical(1, True)
    assert not identical({"a": 1, "b": 2}, {"b": 2, "a": 1})  # same dict, another order
    assert not identical((1, 2), [1, 2])
    old, new = _config(_text([_provider("p", ["k1"])])), _config(_text([_provider("p", ["k1"])]))
    assert old is not new and identical(old, new)
    assert not identical(old, _config(_text([_provider("p", ["k2"])])))


def test_share_unchanged_keeps_the_previous_objects_where_nothing_changed() -> None:
    providers = [_provider(f"p{i}", [f"k{i}-{j}" for j in range(3)]) for i in range(4)]
    old = _config(_text(providers, "debug: true\n"))
    edited = list(providers)
    edited[2] = _provider("p2", ["k2-0", "k2-1", "k2-2"], alias="renamed")
    new = _config(_text(edited, "debug: true\n"))
    shared = share_unchanged(old, new)
    assert shared == new
    kept = [a is b for a, b in zip(shared.openai_compatibility, old.openai_compatibility, strict=True)]
    assert kept == [True, True, False, True]
    assert shared.openai_compatibility[2] is new.openai_compatibility[2]
    assert shared.api_keys is old.api_keys and shared.routing is old.routing
    assert share_unchanged(old, old) is old


def test_share_unchanged_keeps_a_changed_number_type() -> None:
    rule = 'payload:\n  override:\n    - models: [{{name: "gpt-4o"}}]\n      params: {{"temperature": {}}}\n'
    old = _config(_text([_provider("p", ["k"])], rule.format("1")))
    new = _config(_text([_provider("p", ["k"])], rule.format("1.0")))
    assert old == new  # equal for Python, not for the upstream's JSON
    shared = share_unchanged(old, new)
    assert shared.payload is new.payload
    assert type(shared.payload.override[0].params["temperature"]) is float
    assert shared.openai_compatibility is old.openai_compatibility


def _made_and_kept(kept: object, fresh: object) -> tuple[object, object]:
    return kept, fresh


async def test_a_child_sends_shared_objects_by_name() -> None:
    kept = {"big": list(range(1000))}
    kept_back, fresh = await call_in_child(_made_and_kept, kept, {"new": 1}, shared={"kept": kept})
    assert kept_back is kept
    assert fresh == {"new": 1}
    config = _config(_text([_provider("p", ["k"])]))
    back = await call_in_child(_made_and_kept, config.openai_compatibility[0], config.routing,
                               shared=shared_parts(config))
    assert back[0] is config.openai_compatibility[0] and back[1] is config.routing


@pytest.mark.parametrize("edit", ["alias", "duplicate-first", "proxy", "reorder", "drop-first", "same"])
def test_reused_credentials_are_those_a_fresh_build_makes(edit: str) -> None:
    # p0 and p2 share a key and base URL: the second gets the reference's `-1` id suffix.
    keys = [["dup", "a0"], ["b0", "b1"], ["dup", "c0"], ["d0"]]
    providers = [_provider("same" if i in (0, 2) else f"p{i}", k) for i, k in enumerate(keys)]
    old = _config(_text(providers))
    before = build_index(old, ())
    edited, extra = list(providers), ""
    if edit == "alias":
        edited[1] = _provider("p1", keys[1], alias="renamed")
    elif edit == "duplicate-first":  # p0 now makes `dup` twice: p2's suffix moves on
        edited[0] = _provider("same", ["dup", "dup", "a0"])
    elif edit == "proxy":
        extra = 'proxy-url: "http://127.0.0.1:3128"\n'
    elif edit == "reorder":
        edited = [edited[1], edited[0], edited[2], edited[3]]
    elif edit == "drop-first":
        edited = edited[1:]
    new = share_unchanged(old, _config(_text(edited, extra)))
    after = build_index(new, (), before.entry_cache)
    fresh = credentials_from_config(new)
    assert list(after.credentials) == fresh
    assert [c.id for c in after.credentials] == [c.id for c in fresh]
    assert [(c.source, c.proxy_url, c.auth_index) for c in after.credentials] == \
        [(c.source, c.proxy_url, c.auth_index) for c in fresh]
    reused = {id(c) for c in before.credentials} & {id(c) for c in after.credentials}
    expected = {"alias": 5, "duplicate-first": 3, "proxy": 0, "reorder": 3, "drop-first": 0, "same": 7}
    assert len(reused) == expected[edit]


def _big(base_url: str, alias: str) -> str:
    providers = [_provider(f"pool-{p}", [f"sk-{p}-{k:03d}" for k in range(150)], base=base_url,
                           alias=alias if p == 0 else f"alias-{p}") for p in range(6)]
    text = _text(providers, 'host: "127.0.0.1"\n')
    assert len(text.encode()) >= store_module.CHILD_PARSE_MIN_BYTES  # parsed in a forked child
    return text


async def test_reload_keeps_the_credentials_and_state_of_unchanged_entries(
        fake_openai: FakeOpenAIUpstream, proxyd_factory, tmp_config) -> None:
    server = await proxyd_factory(_big(fake_openai.base_url, "first"), watch=False)
    store, holder = server.app[CONFIG_STORE], server.app[RUNTIME]
    before, old_config = holder.current, store.current
    kept = before.credentials[-1]  # pool-5's last key
    state = before.manager.get(kept.id)
    assert state is not None
    before.manager.mark_failure(kept, "alias-5", 429, "quota")
    tmp_config(_big(fake_openai.base_url, "second"))
    assert await store.reload("test") is True
    config, after = store.current, holder.current
    assert config == parse_config_text(_big(fake_openai.base_url, "second")).config
    assert [a is b for a, b in zip(config.openai_compatibility, old_config.openai_compatibility, strict=True)] \
        == [False, True, True, True, True, True]
    assert after.credentials[150:] == before.credentials[150:]
    assert all(a is b for a, b in zip(after.credentials[150:], before.credentials[150:], strict=True))
    assert after.manager.get(kept.id) is state and state.models["alias-5"].blocked_until > 0
    assert "second" in after.registry and "first" not in after.registry
    assert len(after.registry.routes("second")) == 150
    assert attrs.evolve(after.credentials[0], models=()) == attrs.evolve(before.credentials[0], models=())
