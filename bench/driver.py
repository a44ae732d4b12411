"""Load drivers: wrk when installed (preferred), else a raw asyncio HTTP/1.1 keep-alive client.

The raw client also measures what wrk cannot: time to first body byte (TTFB) of a stream, and a latency probe
that runs while the config is reloaded.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs


@attrs.frozen
class Traffic:
    """One kind of request: path, JSON body and headers."""

    path: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class Reply:
    status: int
    ttfb: float  # seconds from the request's first byte sent to the first body byte received
    total: float
    size: int


class RawClient:
    """One keep-alive HTTP/1.1 connection; reads Content-Length and chunked bodies."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None

    async def request(self, traffic: Traffic) -> Reply:
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        head = [f"POST {traffic.path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                "Content-Type: application/json", f"Content-Length: {len(traffic.body)}"]
        head += [f"{k}: {v}" for k, v in traffic.headers]
        started = time.perf_counter()
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + traffic.body)
        reader = self._reader
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        ttfb = 0.0
        size = 0
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                n = int((await reader.readline()).split(b";")[0], 16)
                if n == 0:
                    await reader.readline()
                    break
                await reader.readexactly(n + 2)
                if not ttfb:
                    ttfb = time.perf_counter() - started
                size += n
        else:
            n = int(headers.get("content-length", "0"))
            if n:
                await reader.readexactly(n)
            ttfb = time.perf_counter() - started
            size = n
        total = time.perf_counter() - started
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Reply(status, ttfb or total, total, size)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def ttfb_probe(host: str, port: int, traffic: Traffic, count: int) -> dict[str, float]:
    """`count` sequential requests on one connection: median TTFB and total, in ms."""
    client = RawClient(host, port)
    ttfbs, totals, bad = [], [], 0
    try:
        for _ in range(count):
            reply = await client.request(traffic)
            if reply.status != 200:
                bad += 1
            ttfbs.append(reply.ttfb * 1000)
            totals.append(reply.total * 1000)
    finally:
        client.close()
    return {"ttfb_p50_ms": statistics.median(ttfbs), "ttfb_p99_ms": percentile(ttfbs, 99),
            "total_p50_ms": statistics.median(totals), "errors": bad}


async def raw_load(host: str, port: int, traffic: Traffic, connections: int, duration: float) -> dict[str, Any]:
    """The fallback load generator: `connections` keep-alive loops for `duration` seconds."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def loop() -> None:
        nonlocal errors
        client = RawClient(host, port)
        try:
            while time.perf_counter() < deadline:
                reply = await client.request(traffic)
                if reply.status != 200:
                    errors += 1
                latencies.append(reply.total)
        finally:
            client.close()

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "errors": errors,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "tool": "raw-asyncio"}


# ------------------------------------------------------------------------------------------------------- wrk

WRK = shutil.which("wrk")

_LUA = """\
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
%(headers)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d,' ..
    '"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def wrk_script(traffic: Traffic, directory: Path) -> Path:
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in traffic.headers)
    path = Path(tempfile.mkstemp(suffix=".lua", dir=directory)[1])
    path.write_text(_LUA % {"body": traffic.body.decode(), "headers": headers})
    return path


async def wrk_load(url: str, script: Path, connections: int, duration: float) -> dict[str, Any]:
    """One wrk run (1 thread); requests/s and latency percentiles from its Lua `done` hook."""
    assert WRK is not None
    proc = await asyncio.create_subprocess_exec(
        WRK, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "-s", str(script), url,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate()
    for line in out.decode().splitlines():
        if line.startswith("JSON "):
            data = json.loads(line[5:])
            errors = data["connect"] + data["read"] + data["write"] + data["status"] + data["timeout"]
            return {"requests": data["requests"], "rps": data["requests"] / (data["duration_us"] / 1e6),
                    "p50_ms": data["p50_us"] / 1000, "p99_ms": data["p99_us"] / 1000,
                    "max_ms": data["max_us"] / 1000, "errors": errors, "tool": "wrk"}
    raise RuntimeError(f"wrk produced no result: {out.decode()[-500:]} {err.decode()[-500:]}")
