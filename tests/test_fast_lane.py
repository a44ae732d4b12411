"""The fast lane (proxyd/pipeline/fast_lane.py) answers exactly as the full pipeline does.

Every test sends the same requests to two proxyd instances built from the same config, one with its lane and
one without, each in front of its own scripted upstream that answers byte for byte the same, and compares what
the client got (status, headers, body or SSE bytes), what the upstream received, the request records, the
upstream metrics, the credential states and the error logs. The lane's counters show which path ran.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxyd.app import create_app
from proxyd.keys import PIPELINE, RUNTIME
from proxyd.logs import LOGS
from proxyd.metrics import METRICS
from proxyd.pipeline.record import RequestRecord

KEY = "client-key"
_CHUNK_PAUSE = 0.002


def chunk(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def completion_chunks(model: str = "gpt-4o-2024-08-06", words: int = 4) -> list[bytes]:
    """A typical upstream stream: role, text deltas, finish, usage, [DONE] (each its own write)."""
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}
    out = [chunk({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
    out += [chunk({**base, "choices": [{"index": 0, "delta": {"content": f"w{i} "}}]}) for i in range(words)]
    out.append(chunk({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    out.append(chunk({**base, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": words,
                                                       "total_tokens": 7 + words}}))
    out.append(b"data: [DONE]\n\n")
    return out


WHOLE = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}).encode()


class Script:
    """What the scripted upstream answers to each request, in order (the last one repeats)."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)

    def next(self) -> dict[str, Any]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class ScriptedUpstream:
    """An OpenAI-compatible upstream writing scripted bytes: `{"status", "headers", "body"}` or
    `{"chunks": [...], "cut": bool}` (a stream written chunk by chunk, optionally broken off at the end).

    Both proxyds call this one upstream (so their credentials, which hash its URL, are the same); each
    config sends its own `X-Side` header, and each side has its own copy of the script."""

    def __init__(self, script: Script) -> None:
        self.scripts = {"lane": Script(*script.answers), "full": Script(*script.answers)}
        self.received: dict[str, list[tuple[str, dict[str, str], bytes]]] = {"lane": [], "full": []}
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._answer)
        self.server = TestServer(app, host="127.0.0.1")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/v1"

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        side = request.headers["X-Side"]
        self.received[side].append((request.headers.get("Authorization", ""), dict(request.headers), body))
        answer = self.scripts[side].next()
        if "chunks" not in answer:
            return web.Response(status=answer.get("status", 200), body=answer.get("body", WHOLE),
                                headers={"Content-Type": "application/json", **answer.get("headers", {})})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "x-ratelimit-remaining-requests": "99"})
        await response.prepare(request)
        for part in answer["chunks"]:
            await response.write(part)
            await asyncio.sleep(_CHUNK_PAUSE)
        if answer.get("cut"):
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write_eof()
        return response


def config(upstream: ScriptedUpstream, side: str, extra: str = "", keys: int = 1) -> str:
    entries = "\n".join(f'      - api-key: "sk-{i}"' for i in range(keys))
    return f"""\
host: "127.0.0.1"
api-keys:
  - "{KEY}"
log-dir: "logs-{side}"
openai-compatibility:
  - name: "fake"
    base-url: "{upstream.base_url}"
    headers:
      X-Side: "{side}"
    api-key-entries:
{entries}
    models:
      - name: "gpt-4o"
        alias: "my-model"
{extra}"""


class Side:
    """One proxyd (with or without its lane) in front of the shared scripted upstream."""

    def __init__(self, name: str, upstream: ScriptedUpstream, server: TestServer, log_dir: Path) -> None:
        self.name = name
        self.upstream = upstream
        self.server = server
        self.log_dir = log_dir
        self.records: list[RequestRecord] = []
        server.app[PIPELINE].observers.append(self.records.append)

    @property
    def received(self) -> list[tuple[str, dict[str, str], bytes]]:
        return self.upstream.received[self.name]

    @property
    def lane(self) -> Any:
        return self.server.app[PIPELINE].lane

    async def send(self, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
                   ) -> tuple[int, dict[str, str], bytes]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", **(headers or {})}
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{self.server.port}/v1/chat/completions", data=data, headers=sent) as resp:
            return resp.status, dict(resp.headers), await resp.read()

    def credential_states(self) -> list[tuple[Any, ...]]:
        runtime = self.server.app[RUNTIME].current
        out = []
        for credential in runtime.credentials:
            state = runtime.manager.get(credential.id)
            models = {m: (s.last_status, s.blocked_until > 0, s.quota_level) for m, s in state.models.items()}
            out.append((state.successes, state.failures, state.in_flight, state.last_status,
                        models, dict(state.quota.signals)))
        return out

    def error_logs(self) -> list[str]:
        if not self.log_dir.is_dir():
            return []
        texts = []
        for path in sorted(self.log_dir.glob("error-*.log")):
            text = path.read_text().replace(f"X-Side: {self.name}", "X-Side: <side>")
            text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?", "<time>", text)
            text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{8}\b", "<id>",
                          text)
            text = re.sub(r"\b\d{14}-", "<stamp>-", text)
            texts.append(text)
        return sorted(texts)  # file names hold random request ids


@pytest.fixture
async def sides(tmp_path: Path) -> AsyncIterator[Any]:
    """`make(script, extra="", keys=1)` → (with lane, without lane)."""
    made: list[Any] = []

    async def make(script: Script, extra: str = "", keys: int = 1) -> tuple[Side, Side]:
        upstream = ScriptedUpstream(script)
        await upstream.server.start_server()
        made.append(upstream.server)
        pair = []
        for name in ("lane", "full"):
            path = tmp_path / f"{name}.yaml"
            path.write_text(config(upstream, name, extra, keys))
            server = TestServer(create_app(path, watch=False), host="127.0.0.1")
            await server.start_server()
            made.append(server)
            side = Side(name, upstream, server, tmp_path / f"logs-{name}")
            if name == "full":
                server.app[PIPELINE].lane = None
            pair.append(side)
        return pair[0], pair[1]

    yield make
    for server in made:
        await server.close()


_VARYING = {"date", "x-request-id", "x-cpa-trace-id", "content-length", "server"}


def _headers(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() not in _VARYING}


def _record(record: RequestRecord) -> dict[str, Any]:
    """A record without its times and request id."""
    fields = {k: v for k, v in attrs.asdict(record).items() if k not in ("timestamp", "request_id", "latency_ms")}
    return fields


def _upstream_metrics() -> dict[Any, Any]:
    return {"requests": dict(METRICS.requests), "errors": dict(METRICS.upstream_errors),
            "tokens": dict(METRICS.tokens),
            "attempts": {labels: sum(counts) for labels, counts in METRICS.upstream_duration.counts.items()}}


async def same(lane: Side, full: Side, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
               ) -> tuple[int, dict[str, str], bytes]:
    """Send `body` through both; assert every observable is the same; return the lane side's answer."""
    before = _upstream_metrics()
    got = await lane.send(body, headers)
    lane_metrics = _delta(before, _upstream_metrics())
    before = _upstream_metrics()
    want = await full.send(body, headers)
    full_metrics = _delta(before, _upstream_metrics())
    assert got[0] == want[0]
    assert got[2] == want[2]
    assert _headers(got[1]) == _headers(want[1])
    for name in ("x-request-id", "x-cpa-trace-id"):
        assert (name in {k.lower() for k in got[1]}) == (name in {k.lower() for k in want[1]})
    assert [r[2] for r in lane.received] == [r[2] for r in full.received]
    assert [_upstream_headers(r[1]) for r in lane.received] == [_upstream_headers(r[1]) for r in full.received]
    assert [_record(r) for r in lane.records] == [_record(r) for r in full.records]
    assert lane_metrics == full_metrics
    assert lane.credential_states() == full.credential_states()
    for side in (lane, full):
        await side.server.app[LOGS].requests.drain()  # error logs are written in tasks
    assert lane.error_logs() == full.error_logs()
    return got


def _upstream_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length", "x-side")}


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in after.items():
        changed = {k: v - before[name].get(k, 0) for k, v in values.items() if v != before[name].get(k, 0)}
        out[name] = changed
    return out


CHAT = {"model": "my-model", "messages": [{"role": "user", "content": "hi"}]}
STREAM = {**CHAT, "stream": True}


async def test_a_plain_answer_is_the_lanes_and_the_same(sides: Any) -> None:
    lane, full = await sides(Script({"body": WHOLE}))
    status, _, body = await same(lane, full, CHAT)
    assert status == 200 and json.loads(body)["model"] == "my-model"
    await same(lane, full, {**CHAT, "temperature": 0.5, "user": "u"})
    assert lane.lane.served == 2 and lane.lane.handed_over == 0
    assert [r.input_tokens for r in lane.records] == [5, 5]


async def test_a_plain_stream_is_the_lanes_and_the_same(sides: Any) -> None:
    lane, full = await sides(Script({"chunks": completion_chunks()}))
    status, headers, body = await same(lane, full, STREAM)
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    assert body.count(b'"model":"my-model"') == 7 and body.endswith(b"data: [DONE]\n\n")
    assert lane.lane.served == 1 and lane.records[0].output_tokens == 4


def _split(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


_PLAIN = b"".join(completion_chunks())
_SHAPES: dict[str, list[bytes]] = {
    "one chunk": [_PLAIN],
    "split every 7 bytes": _split(_PLAIN, 7),
    "split every byte of the first events": [*_split(_PLAIN[:300], 1), _PLAIN[300:]],
    "crlf line ends": [c.replace(b"\n", b"\r\n") for c in completion_chunks()],
    "crlf after a plain start": [*completion_chunks()[:3], *[c.replace(b"\n", b"\r\n") for c in
                                                             completion_chunks()[3:]]],
    "no space after data:": [*completion_chunks()[:2], *[c.replace(b"data: ", b"data:") for c in
                                                         completion_chunks()[2:]]],
    "comment lines": [*completion_chunks()[:2], b": keep-alive\n\n", *completion_chunks()[2:]],
    "comment first": [b": hello\n\n", *completion_chunks()],
    "event names": [b"event: message\n" + c for c in completion_chunks()],
    "two data lines": [*completion_chunks()[:2], b'data: {"a":\ndata: 1}\n\n', *completion_chunks()[2:]],
    "blank line runs": [*completion_chunks()[:2], b"\n\n", *completion_chunks()[2:]],
    "done in the middle": [*completion_chunks()[:2], b"data: [DONE]\n\n", *completion_chunks()[2:]],
    "done with spaces": [*completion_chunks()[:-1], b"data:  [DONE] \n\n"],
    "no done": completion_chunks()[:-1],
    "done twice in one chunk": [*completion_chunks()[:-1], b"data: [DONE]\n\ndata: [DONE]\n\n"],
    "done as text": [chunk({"model": "x", "choices": [{"delta": {"content": "[DONE]"}}]}), *completion_chunks()],
    "last event without a blank line": [*completion_chunks()[:-1], b'data: {"model":"x","tail":1}'],
    "held bytes at the end": [*completion_chunks(), b"data: {\"partial\""],
    "in-band error mid-way": [*completion_chunks()[:3], chunk({"error": {"message": "boom", "code": 500}}),
                              *completion_chunks()[3:]],
    "error as the first event": [chunk({"error": {"message": "overloaded", "code": 429}})],
    "error word in content": [chunk({"model": "x", "choices": [{"delta": {"content": '"error"'}}]}),
                              *completion_chunks()],
    "nested model keys": [chunk({"model": "a", "x": {"model": "b"}}), chunk({"y": 1}), *completion_chunks()],
    "nested model keys in one chunk": [chunk({"model": "a", "x": {"model": "b"}}) + chunk({"y": 1})
                                       + b"".join(completion_chunks())],
    "models differ": [chunk({"model": "a"}) + chunk({"model": "b"}), *completion_chunks()],
    "spaced model field": [b'data: {"model" : "gpt-4o", "choices": []}\n\n', *completion_chunks()],
    "escaped model value": [b'data: {"model":"g\\"pt","n":1}\n\n', *completion_chunks()],
    "usage split over events": [chunk({"model": "x", "usage": {"prompt_tokens": 3}}),
                                chunk({"model": "x", "usage": {"completion_tokens": 9, "total_tokens": 12}}),
                                b"data: [DONE]\n\n"],
    "usage in one chunk with others": [b"".join(completion_chunks()[-3:-1]), b"data: [DONE]\n\n"],
    "not json": [b"data: hello\n\n", b"data: \n\n", *completion_chunks()],
    "empty stream": [],
    "only done": [b"data: [DONE]\n\n"],
    "a long event": [chunk({"model": "x", "text": "y" * 70000}), *completion_chunks()],
    "a long first event": [_split(chunk({"model": "x", "text": "z" * 70000}), 5000)[0],
                           *_split(chunk({"model": "x", "text": "z" * 70000}), 5000)[1:], *completion_chunks()],
}


@pytest.mark.parametrize("shape", sorted(_SHAPES))
async def test_every_stream_shape_gives_the_same_bytes(sides: Any, shape: str) -> None:
    lane, full = await sides(Script({"chunks": _SHAPES[shape]}, {"chunks": completion_chunks()}), keys=2)
    await same(lane, full, STREAM)
    await same(lane, full, STREAM)
    assert lane.lane.served + lane.lane.handed_over == 2


@pytest.mark.parametrize("after", [0, 2, 5])
async def test_a_stream_broken_off_gives_the_same_error_frame(sides: Any, after: int) -> None:
    lane, full = await sides(Script({"chunks": [*completion_chunks()[:after], b"data: {\"cut"], "cut": True},
                                    {"chunks": completion_chunks()}), keys=2)
    _, _, body = await same(lane, full, STREAM)
    if after:
        assert b"unexpected EOF" in body
    await same(lane, full, STREAM)


@pytest.mark.parametrize("status", [429, 500, 503, 401, 400])
async def test_an_upstream_error_is_handed_over_and_never_sent_twice(sides: Any, status: int) -> None:
    error = json.dumps({"error": {"message": f"status {status}", "type": "x", "code": None}}).encode()
    lane, full = await sides(Script({"status": status, "body": error, "headers": {"Retry-After": "7"}},
                                    {"body": WHOLE}), keys=2)
    await same(lane, full, CHAT)
    await same(lane, full, STREAM)
    await same(lane, full, CHAT)
    assert lane.lane.handed_over >= 1
    assert len(lane.received) == len(full.received)


async def test_a_stream_whose_first_attempt_fails_fails_over(sides: Any) -> None:
    error = json.dumps({"error": {"message": "busy", "type": "x"}}).encode()
    lane, full = await sides(Script({"status": 503, "body": error}, {"chunks": completion_chunks()}), keys=3)
    await same(lane, full, STREAM)
    assert len(lane.received) == 2 and lane.lane.handed_over == 1


async def test_every_credential_cooling_down_is_answered_as_the_stages_do(sides: Any) -> None:
    error = json.dumps({"error": {"message": "quota", "type": "x"}}).encode()
    lane, full = await sides(Script({"status": 429, "body": error, "headers": {"Retry-After": "30"}}),
                             extra="request-retry: 0\n", keys=2)
    for body in (CHAT, CHAT, STREAM):
        await same(lane, full, body)


async def test_requests_the_lane_leaves_to_the_stages(sides: Any) -> None:
    lane, full = await sides(Script({"body": WHOLE}))
    for body in ({**CHAT, "model": "my-model(high)"}, {**CHAT, "reasoning_effort": "low"},
                 {**CHAT, "model": "unknown"}, {"messages": []}, b"{not json", b"[1]",
                 {**CHAT, "model": 5}):
        await same(lane, full, body)
    assert lane.lane.served == 0


async def test_auth_failures_are_the_same(sides: Any) -> None:
    lane, full = await sides(Script({"body": WHOLE}))
    await same(lane, full, CHAT, {"Authorization": "Bearer wrong"})
    await same(lane, full, CHAT, {"Authorization": ""})
    assert len(lane.error_logs()) == 2


async def test_rotation_and_weights_stay_the_same(sides: Any) -> None:
    for strategy in ("round-robin", "fill-first", "weighted-round-robin"):
        lane, full = await sides(Script({"body": WHOLE}), extra=f"routing:\n  strategy: {strategy}\n", keys=3)
        for _ in range(4):
            await same(lane, full, CHAT)
        assert [r[0] for r in lane.received] == [r[0] for r in full.received]


async def test_request_log_on_leaves_everything_to_the_stages(sides: Any) -> None:
    lane, full = await sides(Script({"body": WHOLE}), extra="request-log: true\n")
    await same(lane, full, CHAT)
    assert lane.lane.served == 0


async def test_passthrough_headers_and_keepalive_settings(sides: Any) -> None:
    lane, full = await sides(Script({"body": WHOLE, "headers": {"X-Upstream": "1"}}),
                             extra="passthrough-headers: true\n")
    _, headers, _ = await same(lane, full, CHAT)
    assert headers.get("X-Upstream") == "1" and lane.lane.served == 1
    lane, full = await sides(Script({"chunks": completion_chunks()}), extra="streaming:\n  keepalive-seconds: 5\n")
    await same(lane, full, STREAM)
    assert lane.lane.served == 0


async def test_a_client_gone_mid_stream_is_recorded_the_same(sides: Any) -> None:
    slow = [*completion_chunks()[:2], *([chunk({"model": "x", "pad": 1})] * 200)]
    lane, full = await sides(Script({"chunks": slow}))
    for side in (lane, full):
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{side.server.port}/v1/chat/completions", json=STREAM,
                headers={"Authorization": f"Bearer {KEY}"}) as resp:
            await resp.content.readany()
        for _ in range(100):
            if side.records:
                break
            await asyncio.sleep(0.02)
    for side in (lane, full):
        await side.server.app[LOGS].requests.drain()
    assert [_record(r) for r in lane.records] == [_record(r) for r in full.records]
    assert lane.records[0].status == 499 and lane.lane.served == 1
    assert lane.error_logs() == full.error_logs() and len(lane.error_logs()) == 1
