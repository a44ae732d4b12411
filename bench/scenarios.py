"""The scenarios of issue 8: traffic per target (direct to the fake, the bare relay, proxyd) and each target's check."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs

from bench.driver import Traffic

CLIENT_KEY = "bench-key"
PROMPT = "Say hello to the benchmark."

BEARER = (("Authorization", f"Bearer {CLIENT_KEY}"),)
CLAUDE_HEADERS = (("x-api-key", CLIENT_KEY), ("anthropic-version", "2023-06-01"))


def _j(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def openai_chat(model: str, stream: bool, headers: tuple[tuple[str, str], ...] = ()) -> Traffic:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
    return Traffic("/v1/chat/completions", _j(body), headers)


def gemini_native(model: str, stream: bool) -> Traffic:
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
    return Traffic(f"/v1beta/models/{model}:{action}", _j(body))


def claude_messages(model: str, stream: bool) -> Traffic:
    body: dict[str, Any] = {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
    return Traffic("/v1/messages", _j(body), CLAUDE_HEADERS)


@attrs.frozen
class Check:
    """A target: `value(figures)` → a number compared with `limit` (`le` or `ge`)."""

    text: str
    value: Callable[[dict[str, dict[str, float]]], float]
    limit: float
    op: str = "ge"

    def met(self, figures: dict[str, dict[str, float]]) -> tuple[float, bool]:
        try:
            v = self.value(figures)
        except (KeyError, ZeroDivisionError):
            return float("nan"), False
        return v, (v >= self.limit if self.op == "ge" else v <= self.limit)


def rps_ratio(figures: dict[str, dict[str, float]]) -> float:
    return figures["proxyd"]["rps"] / figures["relay"]["rps"]


def p50_added(figures: dict[str, dict[str, float]]) -> float:
    return figures["proxyd"]["p50_ms"] - figures["relay"]["p50_ms"]


def ttfb_added(figures: dict[str, dict[str, float]]) -> float:
    return figures["proxyd"]["ttfb_p50_ms"] - figures["relay"]["ttfb_p50_ms"]


@attrs.frozen
class Scenario:
    """A load scenario: the same client traffic against each target (the relay and direct see upstream traffic)."""

    name: str
    connections: int
    traffic: dict[str, Traffic]  # target name → traffic
    upstream: str = "fast"  # which fake (and relay) serves it
    check: Check | None = None
    kind: str = "load"  # "load" (requests/s, p50, p99) or "ttfb" (sequential, time to first byte)


def scenarios() -> list[Scenario]:
    oa_direct = openai_chat("gpt-4o", False)
    oa_direct_s = openai_chat("gpt-4o", True)
    oa_proxy = openai_chat("bench-openai", False, BEARER)
    oa_proxy_s = openai_chat("bench-openai", True, BEARER)
    gem, gem_s = gemini_native("gemini-2.5-flash", False), gemini_native("gemini-2.5-flash", True)
    return [
        Scenario("passthrough c1", 1, {"direct": oa_direct, "relay": oa_direct, "proxyd": oa_proxy},
                 check=Check("p50 ≤ relay + 0.3 ms", p50_added, 0.3, "le")),
        Scenario("passthrough c32", 32, {"direct": oa_direct, "relay": oa_direct, "proxyd": oa_proxy},
                 check=Check("rps ≥ 75% relay", rps_ratio, 0.75)),
        Scenario("stream 20×c8", 8, {"direct": oa_direct_s, "relay": oa_direct_s, "proxyd": oa_proxy_s},
                 check=Check("streams/s ≥ 75% relay", rps_ratio, 0.75)),
        Scenario("stream TTFB c1", 1, {"direct": oa_direct_s, "relay": oa_direct_s, "proxyd": oa_proxy_s},
                 check=Check("TTFB ≤ relay + 0.3 ms", ttfb_added, 0.3, "le"), kind="ttfb"),
        Scenario("openai→gemini c32", 32,
                 {"direct": gem, "relay": gem, "proxyd": openai_chat("bench-gemini", False, BEARER)},
                 check=Check("rps ≥ 50% relay", rps_ratio, 0.5)),
        Scenario("openai→gemini stream c8", 8,
                 {"direct": gem_s, "relay": gem_s, "proxyd": openai_chat("bench-gemini", True, BEARER)},
                 check=Check("streams/s ≥ 50% relay", rps_ratio, 0.5)),
        Scenario("claude→openai c32", 32,
                 {"direct": oa_direct, "relay": oa_direct, "proxyd": claude_messages("bench-openai", False)},
                 check=Check("rps ≥ 50% relay", rps_ratio, 0.5)),
        Scenario("claude→openai stream c8", 8,
                 {"direct": oa_direct_s, "relay": oa_direct_s, "proxyd": claude_messages("bench-openai", True)},
                 check=Check("streams/s ≥ 50% relay", rps_ratio, 0.5)),
        Scenario("passthrough c32, upstream +20 ms", 32,
                 {"direct": oa_direct, "relay": oa_direct, "proxyd": openai_chat("bench-openai-lat", False, BEARER)},
                 upstream="latency"),
    ]


def litellm_traffic(scenario: Scenario) -> Traffic | None:
    """LiteLLM serves the OpenAI passthrough scenarios (model `bench-openai`) when it is installed."""
    if scenario.upstream != "fast" or scenario.traffic["proxyd"].path != "/v1/chat/completions" \
            or b"bench-openai" not in scenario.traffic["proxyd"].body:
        return None
    return scenario.traffic["proxyd"]


def proxyd_config(port: int, fakes: dict[str, int], extra: str = "") -> str:
    fast, lat, slow = fakes["fast"], fakes["latency"], fakes["slow"]
    return f"""\
host: "127.0.0.1"
port: {port}
request-retry: 0
api-keys:
  - "{CLIENT_KEY}"
openai-compatibility:
  - name: "bench"
    base-url: "http://127.0.0.1:{fast}/v1"
    api-key-entries:
      - api-key: "sk-bench"
    models:
      - name: "gpt-4o"
        alias: "bench-openai"
  - name: "bench-lat"
    base-url: "http://127.0.0.1:{lat}/v1"
    api-key-entries:
      - api-key: "sk-bench-lat"
    models:
      - name: "gpt-4o"
        alias: "bench-openai-lat"
  - name: "bench-slow"
    base-url: "http://127.0.0.1:{slow}/v1"
    api-key-entries:
      - api-key: "sk-bench-slow"
    models:
      - name: "gpt-4o"
        alias: "bench-slow"
{extra}gemini-api-key:
  - api-key: "sk-bench-gemini"
    base-url: "http://127.0.0.1:{fast}"
    models:
      - name: "gemini-2.5-flash"
        alias: "bench-gemini"
"""


def big_providers(fast: int, probe_alias: str, providers: int = 10, keys: int = 100, aliases: int = 50) -> str:
    """`providers` × `keys` credentials and `providers` × `aliases` model aliases (1,000 and 500 by default)."""
    out = []
    for p in range(providers):
        out.append(f'  - name: "pool-{p}"\n    base-url: "http://127.0.0.1:{fast}/v1"\n    api-key-entries:\n')
        out.extend(f'      - api-key: "sk-pool-{p}-{k:04d}"\n' for k in range(keys))
        out.append("    models:\n")
        for a in range(aliases):
            alias = probe_alias if (p, a) == (0, 0) else f"alias-{p}-{a}"
            out.append(f'      - name: "gpt-4o"\n        alias: "{alias}"\n')
    return "".join(out)
