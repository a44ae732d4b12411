"""Profile proxyd under one scenario's load with py-spy: `python -m bench.profile "passthrough c32" [--seconds 10]`.

py-spy is not a dependency (`pip install py-spy`). Prints the functions with the most samples, by self time and
by inclusive time, and keeps the collapsed stacks (flamegraph input) in bench/results/profile-<scenario>.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench import driver
from bench.run import HOST, ROOT, Suite
from bench.scenarios import scenarios

_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _short(frame: str) -> str:
    """`fn (package/file.py:12)` → `package/file.py:fn` (py-spy already trims paths to the package)."""
    m = _FRAME.match(frame)
    return f"{m.group('file')}:{m.group('fn')}" if m else frame


def summarise(collapsed: Path, top: int) -> str:
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";")]
        self_t[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    out = [f"{total} samples"]
    for title, counter in (("self", self_t), ("inclusive", incl)):
        out.append(f"\n-- top {top} by {title} time --")
        out.extend(f"{n / total:6.1%}  {name}" for name, n in counter.most_common(top))
    return "\n".join(out)


async def profile(args: argparse.Namespace) -> str:
    scenario = next(s for s in scenarios() if s.name == args.scenario)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    suite = Suite(argparse.Namespace(latency_ms=20.0, slow_chunk_ms=400.0, litellm=False, raw=False,
                                     proxyd_src=args.proxyd_src))
    out = ROOT / "bench" / "results" / f"profile-{re.sub(r'[^a-z0-9]+', '-', scenario.name.lower())}.txt"
    try:
        await suite.start()
        assert suite.proxyd is not None
        traffic = scenario.traffic["proxyd"]
        await suite.load(suite.proxyd.port, traffic, scenario.connections, 1)  # warm up
        recorder = await asyncio.create_subprocess_exec(
            spy, "record", "--pid", str(suite.proxyd.pid), "--duration", str(args.seconds), "--rate", "250",
            "--format", "raw", "--output", str(out), "--nonblocking",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        await asyncio.sleep(0.5)
        if scenario.kind == "load":
            result = await suite.load(suite.proxyd.port, traffic, scenario.connections, args.seconds)
        else:
            result = await driver.ttfb_probe(HOST, suite.proxyd.port, traffic, 2000)
        await recorder.wait()
    finally:
        suite.stop()
    return f"{scenario.name}: {result}\n" + summarise(out, args.top)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("scenario", help="a scenario name from bench/scenarios.py")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--proxyd-src", type=Path, default=ROOT)
    import uvloop

    sys.stdout.write(uvloop.run(profile(parser.parse_args())) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
