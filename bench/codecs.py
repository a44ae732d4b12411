"""In-process micro-benchmark of the translated paths: `python -m bench.codecs [--reps 2000] [--profile NAME]`.

Pushes the bench scenarios' client bodies through the translate stage's work (canonical decode, upstream encode,
thinking, upstream JSON) and the bench fake's recorded answers (a 20-chunk stream, one SSE parse per chunk as it
arrives, or the whole body) through the response rewriter, as the pipeline does, without any I/O. Prints the
lowest CPU µs per request (thread time) of several runs for each scenario; `--profile NAME` prints cProfile's
top functions for one scenario instead. Compare commits on one machine: `--proxyd-src` is not needed, run it in
each checkout (PYTHONPATH).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import time
from collections.abc import Callable

from bench import fake_upstream
from bench.scenarios import PROMPT
from proxyd.pipeline.translate import Translation
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.sse import SSEParser
from proxyd.providers.base import json_bytes
from proxyd.thinking import apply_thinking

CHAT_BODY = {"model": "bench-gemini", "messages": [{"role": "user", "content": PROMPT}]}
CLAUDE_BODY = {"model": "bench-openai", "max_tokens": 256, "messages": [{"role": "user", "content": PROMPT}]}


def _request(client: WireProtocol, body: dict, upstream: WireProtocol, model: str, stream: bool) -> Translation:
    body = {**body, "stream": True} if stream else dict(body)
    translation = Translation(client, body, str(body["model"]), stream)
    if upstream is not client:
        translation.validate()
    upstream_body = translation.request_for(upstream, model)
    upstream_body = apply_thinking(upstream_body, upstream_format=str(upstream), model=model, model_info=None,
                                   suffix=None, client_format=str(client), user_defined=True)
    json_bytes(upstream_body)
    return translation


def scenario(client: WireProtocol, body: dict, upstream: WireProtocol, model: str, stream: bool,
             answer: bytes | list[bytes]) -> Callable[[], bytes]:
    """One request's translate + rewrite work; returns the client bytes."""

    def run() -> bytes:
        translation = _request(client, body, upstream, model, stream)
        rewriter = translation.rewriter_for(upstream)
        if not stream:
            assert isinstance(answer, bytes)
            return rewriter.body(answer)
        parser = SSEParser()
        out = []
        for chunk in answer:
            events = parser.feed(chunk)
            if events:
                out.append(b"".join([rewriter.event(e) for e in events]))
        out.append(b"".join([rewriter.event(e) for e in parser.close()]))
        out.append(rewriter.done())
        return b"".join(out)

    return run


def scenarios() -> dict[str, Callable[[], bytes]]:
    chat, gemini, claude = WireProtocol.OPENAI_CHAT, WireProtocol.GEMINI, WireProtocol.CLAUDE
    return {
        "openai→gemini": scenario(chat, CHAT_BODY, gemini, "gemini-2.5-flash", False, fake_upstream.gemini_body()),
        "openai→gemini stream": scenario(chat, CHAT_BODY, gemini, "gemini-2.5-flash", True,
                                         fake_upstream.gemini_chunks(20)),
        "claude→openai": scenario(claude, CLAUDE_BODY, chat, "gpt-4o", False, fake_upstream.openai_body()),
        "claude→openai stream": scenario(claude, CLAUDE_BODY, chat, "gpt-4o", True, fake_upstream.openai_chunks(20)),
        # The yardstick: the same-protocol passthrough of the same stream (no codecs).
        "passthrough stream": scenario(chat, {**CHAT_BODY, "model": "bench-openai"}, chat, "gpt-4o", True,
                                       fake_upstream.openai_chunks(20)),
    }


def measure(run: Callable[[], bytes], reps: int, rounds: int) -> float:
    run()  # warm up (lazy tables, the tokenizer)
    samples = []
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(reps):
            run()
        samples.append((time.thread_time() - start) / reps * 1e6)
    return min(samples)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.codecs")
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", help="scenarios whose name contains this")
    parser.add_argument("--profile", help="cProfile one scenario (exact name)")
    parser.add_argument("--show", help="print one scenario's client bytes (exact name)")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    runs = scenarios()
    if args.show:
        sys.stdout.write(runs[args.show]().decode() + "\n")
        return 0
    if args.profile:
        run = runs[args.profile]
        run()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.reps):
            run()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
        return 0
    results = {name: round(measure(run, args.reps, args.rounds), 1)
               for name, run in runs.items() if not args.only or args.only in name}
    sys.stdout.write(json.dumps(results, ensure_ascii=False, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
