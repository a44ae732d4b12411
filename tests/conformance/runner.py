"""Runs one scenario against proxyd: mock up, config written, proxyd started, steps played, result compared."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import socket
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
from ruamel.yaml import YAML

from .client import play_http, play_ws
from .compare import (
    Comparer,
    Context,
    Mismatch,
    apply_overrides,
    apply_rewrites,
    normalise,
    normalise_upstream_headers,
    pointer_regex,
)
from .mock import MockUpstream
from .reqlogs import MOCK_SERVER, golden_logs, observed_logs
from .scripts import Plan, plan_for
from .skiplist import SkipList

BASELINE_MOCK_PORT = "38921"
BASELINE_SERVER_PORT = "38922"
CODEX_MODEL = "gpt-5.5"
RECORDER_MOCK_PORT = int(BASELINE_MOCK_PORT)
RECORDER_SERVER_PORT = int(BASELINE_SERVER_PORT)
DEFAULT_SCENARIOS = Path("/work/shared/conformance/e2e")
DEFAULT_BASELINE = Path("/work/shared/conformance/config.baseline.legacy.yaml")


@dataclass(slots=True)
class Outcome:
    """The result of one scenario: status ``pass``/``fail``/``skip`` and the first difference."""

    scenario_id: str
    status: str
    detail: str = ""
    category: str = ""
    elapsed: float = 0.0
    observed: dict[str, Any] = field(default_factory=dict)


def load_scenarios(directory: Path) -> list[dict[str, Any]]:
    """Every ``*.json`` golden in ``directory`` (sorted by id)."""
    out = []
    for path in sorted(directory.glob("*.json")):
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
        if isinstance(data, dict) and "steps" in data:
            data.setdefault("id", path.stem)
            out.append(data)
    return out


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render_config(baseline_text: str, plan: Plan, *, mock_port: int, server_port: int, work: Path) -> str:
    """The baseline with the run's ports and auth dir, plus the scenario's profile, as YAML."""
    text = baseline_text.replace(f"127.0.0.1:{BASELINE_MOCK_PORT}", f"127.0.0.1:{mock_port}")
    if plan.verbatim and not plan.profile and not plan.key_patches:
        return verbatim_config(text, server_port=server_port, work=work)
    yaml = YAML(typ="safe")
    config: dict[str, Any] = yaml.load(text)
    config["port"] = server_port
    config["auth-dir"] = str(work / "auth")
    for entry in config.get("codex-api-key") or []:
        # The recorded build's registry knows gpt-5.5; v6.9.0's catalogue (and proxyd's) stops at gpt-5.4.
        entry.setdefault("models", [{"name": CODEX_MODEL, "alias": CODEX_MODEL}])
    for key, value in plan.profile.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    for list_key, patches in plan.key_patches.items():
        entries = config.get(list_key) or []
        for entry, patch in zip(entries, patches, strict=False):
            entry.update(patch)
    import io

    buf = io.StringIO()
    YAML().dump(config, buf)
    return buf.getvalue()


def verbatim_config(text: str, *, server_port: int, work: Path) -> str:
    """The baseline file as the recorder wrote it (management scenarios read it back as text): its own
    comment lines dropped, the run's auth dir filled in. `port` stays the recorder's 38922 whatever port the
    in-process server got (the test server binds its own; the file is only read back). The codex keys keep no
    `models` (proxyd's catalogue has gpt-5.5)."""
    del server_port
    out = []
    for line in (line for line in text.splitlines() if not line.startswith("#")):
        if line.startswith("auth-dir: "):
            line = f'auth-dir: "{work / "auth"}"'
        out.append(line)
    return "\n".join(out).lstrip("\n") + "\n"


def _denormalise(value: Any, mock_port: int, server_port: int) -> Any:
    """The recorder stored request summaries normalised: put this run's addresses back for ``<mock>`` /
    ``<server>`` in request bodies (``api-call`` URLs)."""
    if isinstance(value, str):
        return value.replace("<mock>", f"127.0.0.1:{mock_port}").replace("<server>", f"127.0.0.1:{server_port}")
    if isinstance(value, list):
        return [_denormalise(v, mock_port, server_port) for v in value]
    if isinstance(value, dict):
        return {k: _denormalise(v, mock_port, server_port) for k, v in value.items()}
    return value


def _drop_mock_server_header(obs: dict[str, Any]) -> None:
    """A harness artefact, as in request logs: the Python mock's own `Server` header in the upstream header map
    an `/api-call` answer relays (the recorder's mock sent none)."""
    body = obs.get("body") or {}
    value = body.get("value") if body.get("type") == "json" else None
    header = value.get("header") if isinstance(value, dict) else None
    if isinstance(header, dict):
        server = header.get("Server")
        if isinstance(server, list) and server and all(isinstance(v, str) and MOCK_SERVER.match(v) for v in server):
            del header["Server"]


def _compares_logs(scenario: dict[str, Any]) -> bool:
    """Request-log files are compared where the golden captured them; a reqlog scenario without the key
    recorded that no file was written."""
    return "request_logs" in scenario or str(scenario.get("id", "")).startswith("reqlog.")


async def _request_logs_dir(app: Any) -> Path | None:
    """Where proxyd wrote request logs, once its pending writes are done (the recorder waited 400 ms)."""
    from proxyd.logs.service import request_logs

    service = request_logs(app)
    if service is None:
        return None
    await asyncio.sleep(0.05)
    await service.requests.drain()
    return Path(service.directory)


def _is_ws(scenario: dict[str, Any]) -> bool:
    return any(step["request"].get("method") == "WS" for step in scenario["steps"])


async def run_scenario(
    scenario: dict[str, Any],
    *,
    baseline_text: str,
    skiplist: SkipList,
    workroot: Path,
    strict: bool = False,
    mock: MockUpstream,
    server_port: int = 0,
) -> Outcome:
    """Run and compare one scenario (the skip list's out-of-scope entries are honoured by the caller)."""
    from aiohttp.test_utils import TestServer

    from proxyd.app import create_app

    sid = scenario["id"]
    started = time.monotonic()
    plan = plan_for(sid)
    work = workroot / sid
    (work / "auth").mkdir(parents=True, exist_ok=True)
    observed: dict[str, Any] = {"steps": [], "upstream": []}
    mock.reset(plan.script)
    chosen_port = server_port
    config_path = work / "config.yaml"
    for tries_left in range(4, -1, -1):
        server_port = chosen_port or free_port()
        config_path.write_text(
            render_config(baseline_text, plan, mock_port=mock.port, server_port=server_port, work=work),
            encoding="utf-8",
        )
        try:
            app = create_app(config_path, watch=False)
        except Exception as exc:  # the config was refused: report it as the first difference
            return Outcome(sid, "fail", f"/config: proxyd refused the scenario config: {exc}".replace("\n", " "))
        server = TestServer(app, host="127.0.0.1", port=server_port)
        try:
            await server.start_server()
            break
        except OSError as exc:  # the free port was taken meanwhile (other test runs share the machine)
            if chosen_port or exc.errno != errno.EADDRINUSE or not tries_left:
                raise
    base = f"http://127.0.0.1:{server_port}"
    logs_dir: Path | None = None
    try:
        async with aiohttp.ClientSession(auto_decompress=True, skip_auto_headers=("Accept-Encoding",)) as session:
            if _is_ws(scenario):
                await asyncio.sleep(0.1)
            for step in scenario["steps"]:
                request = step["request"]
                if request.get("method") == "WS":
                    obs = await play_ws(session, base, request)
                else:
                    obs = await play_http(session, base, _denormalise(request, mock.port, server_port), str(work))
                    _drop_mock_server_header(obs)
                observed["steps"].append({"response": obs})
        if _compares_logs(scenario):
            logs_dir = await _request_logs_dir(app)
    finally:
        await server.close()
    await asyncio.sleep(0)
    if logs_dir is not None:
        observed["request_logs"] = await asyncio.to_thread(observed_logs, logs_dir)
    for entry in mock.log:
        entry["headers"] = normalise_upstream_headers(entry["headers"])
        observed["upstream"].append(entry)
    # the recorder's <work> is the scratch root; each scenario ran in <work>/<id> (FORMAT.md §5)
    ctx = Context(mock=str(mock.port), server=str(server_port), work=str(workroot))
    ours = normalise(observed, ctx)
    golden = {"steps": [{"response": s["response"]} for s in scenario["steps"]], "upstream": scenario["upstream"]}
    if _compares_logs(scenario):
        golden["request_logs"] = golden_logs(scenario.get("request_logs") or [])
    expect, ignore, rewrite = skiplist.adjustments(sid, strict=strict)
    golden = apply_overrides(golden, expect)
    apply_rewrites(golden, [(pointer_regex(at), old, new) for at, old, new in rewrite])
    comparer = Comparer(ctx, scenario.get("volatile", ()), [pointer_regex(p) for p in ignore])
    elapsed = time.monotonic() - started
    try:
        comparer.compare(golden, ours)
    except Mismatch as exc:
        return Outcome(sid, "fail", str(exc), elapsed=elapsed, observed=ours)
    return Outcome(sid, "pass", elapsed=elapsed, observed=ours)


async def run_many(
    scenarios: Sequence[dict[str, Any]],
    *,
    skiplist: SkipList,
    baseline: Path = DEFAULT_BASELINE,
    jobs: int = 8,
    strict: bool = False,
    mock_port: int = RECORDER_MOCK_PORT,
) -> list[Outcome]:
    """Run scenarios (each on a fresh mock and proxyd); out-of-scope entries are skipped.

    With a fixed ``mock_port`` (default: the recorder's 38921, which is part of every credential id and so
    decides the round-robin start) scenarios run one at a time; ``mock_port=0`` picks free ports and runs
    ``jobs`` scenarios at once, at the price of a credential order that depends on the ports drawn.
    """
    baseline_text = await asyncio.to_thread(baseline.read_text, encoding="utf-8")
    lock = await asyncio.to_thread(_port_lock, mock_port) if mock_port else None
    try:
        with quiet_logs():
            return await _run_many(scenarios, skiplist=skiplist, baseline_text=baseline_text, jobs=jobs,
                                   strict=strict, mock_port=mock_port)
    finally:
        if lock is not None:
            lock.close()


def _port_lock(port: int) -> IO[bytes]:
    """Serialise runs that want the recorder's fixed port on this machine (concurrent runs would otherwise fall
    back to a free port and so to another credential order): an exclusive flock, waited for, held for the run."""
    handle = open(Path(tempfile.gettempdir()) / f"proxyd-conformance-{port}.lock", "ab")  # noqa: SIM115
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


async def _run_many(scenarios: Sequence[dict[str, Any]], *, skiplist: SkipList, baseline_text: str, jobs: int,
                    strict: bool, mock_port: int) -> list[Outcome]:
    shared: MockUpstream | None = None
    if mock_port:
        shared = MockUpstream(port=mock_port)
        try:
            await shared.start()
        except OSError:  # taken (another run?): one free port, still one scenario at a time
            shared = MockUpstream()
            await shared.start()
    server_port = 0
    if shared is not None and port_free(RECORDER_SERVER_PORT):
        server_port = RECORDER_SERVER_PORT
    gate = asyncio.Semaphore(jobs if shared is None else 1)
    with tempfile.TemporaryDirectory(prefix="proxyd-conformance-") as tmp:
        workroot = Path(tmp)

        async def run_one(scenario: dict[str, Any]) -> Outcome:
            if shared is not None:
                return await run_scenario(
                    scenario,
                    baseline_text=baseline_text,
                    skiplist=skiplist,
                    workroot=workroot,
                    strict=strict,
                    mock=shared,
                    server_port=server_port or free_port(),
                )
            async with MockUpstream() as own:
                return await run_scenario(
                    scenario,
                    baseline_text=baseline_text,
                    skiplist=skiplist,
                    workroot=workroot,
                    strict=strict,
                    mock=own,
                )

        async def one(scenario: dict[str, Any]) -> Outcome:
            sid = scenario["id"]
            entry = None if strict else skiplist.entry_for(sid)
            if entry is not None and entry.category == "out-of-scope":
                return Outcome(sid, "skip", entry.reason, category=entry.category)
            async with gate:
                try:
                    outcome = await asyncio.wait_for(run_one(scenario), timeout=60)
                except TimeoutError:
                    outcome = Outcome(sid, "fail", "/: scenario timed out after 60 s")
                except Exception as exc:
                    outcome = Outcome(sid, "fail", f"/: runner error {type(exc).__name__}: {exc}")
            if entry is not None:
                outcome.category = entry.category
            return outcome

        try:
            return list(await asyncio.gather(*(one(s) for s in scenarios)))
        finally:
            if shared is not None:
                await shared.close()


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Keep proxyd's in-process logging (structlog/stdlib) off the runner's output, and restore it afterwards
    (the runner also runs inside pytest, where later tests read the logs)."""
    import structlog

    previous = structlog.get_config()
    logging.disable(logging.CRITICAL)
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
        structlog.configure(**previous)


def report_lines(outcomes: Iterable[Outcome]) -> tuple[list[str], dict[str, int]]:
    """One line per scenario and the counts; known gaps (not-yet) that still fail count as skipped."""
    lines: list[str] = []
    counts = {"passed": 0, "failed": 0, "skipped": 0, "diverged": 0, "not-yet": 0, "out-of-scope": 0, "stale": 0}
    for o in sorted(outcomes, key=lambda o: o.scenario_id):
        if o.status == "skip":
            counts["skipped"] += 1
            counts["out-of-scope"] += 1
            lines.append(f"SKIP {o.scenario_id}: out-of-scope: {o.detail}")
        elif o.category == "not-yet" and o.status == "fail":
            counts["skipped"] += 1
            counts["not-yet"] += 1
            lines.append(f"SKIP {o.scenario_id}: not-yet (still failing: {o.detail})")
        elif o.status == "pass":
            counts["passed"] += 1
            if o.category == "divergence":
                counts["diverged"] += 1
            if o.category == "not-yet":
                counts["stale"] += 1
                lines.append(f"PASS {o.scenario_id} (listed as not-yet: remove the entry)")
            else:
                lines.append(f"PASS {o.scenario_id}")
        else:
            counts["failed"] += 1
            lines.append(f"FAIL {o.scenario_id}: {o.detail}")
    return lines, counts


def write_report(outcomes: Iterable[Outcome], out: Any = sys.stdout) -> dict[str, int]:
    lines, counts = report_lines(outcomes)
    for line in lines:
        out.write(line + "\n")
    out.write(
        f"# diverged (passing with a DECISIONS override) {counts['diverged']}, not-yet {counts['not-yet']}, "
        f"out of scope {counts['out-of-scope']}, stale not-yet entries {counts['stale']}\n"
    )
    out.write(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped\n")
    return counts
