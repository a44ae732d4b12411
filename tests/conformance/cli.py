"""Command line: ``python -m tests.conformance --scenarios DIR`` (or ``python tests/conformance/run.py``)."""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import json
import sys
from pathlib import Path

from .runner import DEFAULT_BASELINE, DEFAULT_SCENARIOS, RECORDER_MOCK_PORT, load_scenarios, run_many, write_report
from .skiplist import DEFAULT_PATH, SkipList


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, print one line each and the totals; exit 1 when any failed."""
    parser = argparse.ArgumentParser(prog="conformance", description=__doc__)
    parser.add_argument("--scenarios", type=Path, default=DEFAULT_SCENARIOS, help="directory of golden *.json")
    parser.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE, help="baseline config (legacy layout)")
    parser.add_argument("--skiplist", type=Path, default=DEFAULT_PATH, help="skip list (TOML)")
    parser.add_argument("--only", action="append", default=[], help="scenario id glob (repeatable)")
    parser.add_argument(
        "--mock-port", type=int, default=RECORDER_MOCK_PORT, help="mock port (0: free ports, run --jobs at once)"
    )
    parser.add_argument("--jobs", type=int, default=8, help="scenarios run concurrently with --mock-port 0")
    parser.add_argument("--strict", action="store_true", help="ignore the skip list: compare with the reference as is")
    parser.add_argument("--dump", type=Path, help="write our normalised observations of failing scenarios here")
    args = parser.parse_args(argv)
    scenarios = load_scenarios(args.scenarios)
    if args.only:
        scenarios = [s for s in scenarios if any(fnmatch.fnmatchcase(s["id"], g) for g in args.only)]
    skiplist = SkipList.load(args.skiplist)
    outcomes = asyncio.run(
        run_many(
            scenarios,
            skiplist=skiplist,
            baseline=args.baseline,
            jobs=args.jobs,
            strict=args.strict,
            mock_port=args.mock_port,
        )
    )
    counts = write_report(outcomes, sys.stdout)
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
        for o in outcomes:
            if o.status == "fail":
                (args.dump / f"{o.scenario_id}.json").write_text(json.dumps(o.observed, indent=2) + "\n")
    return 1 if counts["failed"] else 0
