"""Conformance: the reference's recorded end-to-end scenarios replayed against proxyd (docs/conformance.md).

One test per scenario id. The skip list (tests/conformance/skiplist.toml) marks scenarios out of scope (skipped),
deliberate divergences (run, asserting proxyd's documented behaviour) and known gaps (``not-yet``: run, reported
as xfail while they still differ, failing once they pass so the entry gets removed). Set
``PROXYD_CONFORMANCE_DIR`` to replay another scenario directory.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from conformance.runner import DEFAULT_SCENARIOS, Outcome, load_scenarios, run_many
from conformance.skiplist import SkipList

SCENARIO_DIR = Path(os.environ.get("PROXYD_CONFORMANCE_DIR", str(DEFAULT_SCENARIOS)))
SKIPLIST = SkipList.load()
SCENARIOS: dict[str, dict[str, Any]] = (
    {s["id"]: s for s in load_scenarios(SCENARIO_DIR)} if SCENARIO_DIR.is_dir() else {}
)


@pytest.fixture(scope="session")
def conformance_outcomes(request: pytest.FixtureRequest) -> dict[str, Outcome]:
    """Run every selected, in-scope scenario once (one proxyd and one mock each) and keep the outcomes."""
    selected = [
        item.callspec.params["scenario_id"]
        for item in request.session.items
        if item.originalname == "test_scenario" and hasattr(item, "callspec")
    ]
    wanted = [SCENARIOS[sid] for sid in selected if sid in SCENARIOS]
    outcomes = asyncio.run(run_many(wanted, skiplist=SKIPLIST))
    return {o.scenario_id: o for o in outcomes}


@pytest.mark.skipif(not SCENARIOS, reason=f"no conformance scenarios under {SCENARIO_DIR}")
@pytest.mark.parametrize("scenario_id", sorted(SCENARIOS) or ["none"])
def test_scenario(scenario_id: str, conformance_outcomes: dict[str, Outcome]) -> None:
    entry = SKIPLIST.entry_for(scenario_id)
    if entry is not None and entry.category == "out-of-scope":
        pytest.skip(f"out-of-scope: {entry.reason}")
    outcome = conformance_outcomes[scenario_id]
    if entry is not None and entry.category == "not-yet":
        if outcome.status == "fail":
            pytest.xfail(f"not-yet: {entry.reason} | first difference {outcome.detail}")
        pytest.fail(f"{scenario_id} passes now: remove its not-yet entry ({entry.reason})")
    assert outcome.status == "pass", outcome.detail


def test_skiplist_entries_are_documented() -> None:
    """Every entry names its reason; divergences name their DECISIONS item; every rule pattern is used."""
    for entry in [*SKIPLIST.rules, *SKIPLIST.entries]:
        assert entry.reason, entry.match
        if entry.category == "divergence":
            assert entry.decision is not None, entry.match
