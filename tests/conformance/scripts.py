"""Per-scenario mock scripts and config profiles, keyed by scenario id (mock-scripts.md).

The goldens do not carry the upstream's replies; the recorder's scenario code chose them. This module encodes
those choices from the scenario id: the matrix kinds, the error cases, the chunking modes and the routing
profiles. A profile is a dict merged over the baseline config (lists of provider keys are patched per entry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .mock import Reply, Script, Step, error, ok

FAMILY_AFTER = {"claude": 4, "codex": 6, "gemini": 1, "compat": 3}
KINDS = {"text", "tool", "thinking", "parallel", "mixed", "length", "cached", "pause", "image"}
PROVIDER_LISTS = {"claude": "claude-api-key", "codex": "codex-api-key", "gemini": "gemini-api-key"}


@dataclass(slots=True)
class Plan:
    """What a scenario needs besides its golden: the mock script and the config overrides."""

    script: Script
    profile: dict[str, Any] = field(default_factory=dict)
    key_patches: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    verbatim: bool = False  # write the baseline file as the recorder did (its text is read back by mgmt scenarios)

    @property
    def profile_key(self) -> str:
        """A stable identity of the config this plan renders (scenarios with equal keys share a config)."""
        import json

        return json.dumps([self.profile, self.key_patches], sort_keys=True)


def always(reply: Reply, **kw: Any) -> Step:
    return Step(reply=reply, **kw)


def once(reply: Reply, **kw: Any) -> Step:
    return Step(reply=reply, times=1, **kw)


def _script(*steps: Step, fallback: Reply | None = None) -> Script:
    return Script(steps=list(steps), fallback=fallback or ok())


def _err_plan(family: str, case: str) -> Plan:
    after = FAMILY_AFTER.get(family, 3)
    if case in ("upstream401", "upstream400", "upstream408"):
        return Plan(_script(always(error(int(case[-3:])))))
    if case == "429_failover":
        return Plan(_script(once(error(429, {"Retry-After": "30"}))))
    if case == "429_all":
        # mock-scripts.md says `always(Error(429))`; the goldens show the 429 carried `Retry-After: 30` as in
        # 429_failover: the Claude route's cooling answer has a <volatile> Retry-After (the reference adds a
        # random 1-30 s grace to a header-derived Claude cooldown; a header-less 429 gives a stable 1 s
        # backoff), the compat route says 30, and the Gemini route 1 (its executor reads only body hints).
        return Plan(_script(always(error(429, {"Retry-After": "30"}))))
    if case in ("500_failover", "stream_500_failover"):
        return Plan(_script(once(error(500))))
    if case == "500_all":
        return Plan(_script(always(error(500))))
    if case == "stream_mid_error":
        return Plan(_script(always(Reply(kind="stream_error", after=after))))
    if case == "stream_cut_abort":
        return Plan(_script(always(Reply(kind="cut", after=after, abort=True))))
    if case == "stream_cut_clean":
        return Plan(_script(always(Reply(kind="cut", after=after, abort=False))))
    if case == "json_cut_abort":
        return Plan(_script(always(Reply(kind="cut", after=1, abort=True))))
    return Plan(_script())


def _route_plan(rest: list[str]) -> Plan:
    name = ".".join(rest)
    head = rest[0] if rest else ""
    if head == "fill_first":
        plan = Plan(_script(), {"routing": {"strategy": "fill-first"}})
        if name == "fill_first.claude_failover":
            plan.script = _script(once(error(500), credential="sk-claude-1"))
        return plan
    if head == "wrr":
        # the reference weighs keys only under `weighted-round-robin` (its round-robin would alternate 1,2,1,2)
        return Plan(_script(), {"routing": {"strategy": "weighted-round-robin"}},
                    key_patches={"claude-api-key": [{"weight": 3}, {"weight": 1}]})
    if name == "priority.healthy":
        return Plan(_script(), key_patches={"claude-api-key": [{"priority": 1}, {"priority": 10}]})
    if name == "priority.fallback":
        return Plan(
            _script(once(error(500), credential="sk-claude-2")),
            key_patches={"claude-api-key": [{"priority": 1}, {"priority": 10}]},
        )
    if head == "prefix":
        forced = name == "prefix.forced"
        return Plan(_script(), {"force-model-prefix": forced}, {"claude-api-key": [{"prefix": "team"}, {}]})
    if name == "excluded_models":
        patch = {"excluded-models": ["claude-3-*", "*sonnet*"]}
        return Plan(_script(), key_patches={"claude-api-key": [patch, patch]})
    if name == "alias.claude":
        alias = {"models": [{"name": "claude-sonnet-4-5-20250929", "alias": "sonnet-alias"}]}
        return Plan(_script(), key_patches={"claude-api-key": [alias, alias]})
    if head == "thinking_suffix":
        # route.thinking_suffix.gemini is an old-era golden (0fc77cdc): that mock sent a thinking answer's text whole.
        return Plan(_script(always(ok("thinking_whole_text" if name == "thinking_suffix.gemini" else "thinking"))))
    if name == "retry.none":
        return Plan(_script(always(error(500))), {"request-retry": 0})
    if name == "retry.rounds":
        return Plan(_script(always(error(500))), {"request-retry": 3})
    if name == "retry.max_credentials":
        return Plan(_script(always(error(500))), {"max-retry-credentials": 1})
    if name == "cooling.disabled_500":
        return Plan(_script(always(error(500))), {"disable-cooling": True})
    if name == "cooling.disabled_429":
        return Plan(_script(always(error(429))), {"disable-cooling": True})
    if name == "cooling.500_second_request":
        return Plan(_script(once(error(500), credential="sk-claude-1")))
    if name == "cooling.401_second_request":
        return Plan(_script(once(error(401), credential="sk-claude-1")))
    if name == "cooling.all_cooling_500":
        return Plan(_script(always(error(500))))
    if name == "cooling.all_cooling_401":
        return Plan(_script(always(error(401))))
    # request-scoped-errors rules live on the key entries and need a body match (the reference's schema; the
    # recorder's exact rule text is not in the copy: these match the mock's error message)
    if name == "scoped.stop":
        rules = {"request-scoped-errors": [{"status": 429, "match": ["mock upstream error 429"], "action": "stop"}]}
        return Plan(_script(once(error(429))), key_patches={"claude-api-key": [rules, rules]})
    if name == "scoped.continue_cooldown":
        rules = {"request-scoped-errors": [
            {"status": 400, "match": ["mock upstream error 400"], "action": "continue-and-cooldown"}]}
        return Plan(_script(once(error(400))), key_patches={"claude-api-key": [rules, rules]})
    if name == "400_context_length":
        body = {
            "error": {
                "message": "maximum context length exceeded",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            }
        }
        return Plan(_script(always(error(400, body=body))))
    if name == "upstream_html_500":
        html = Reply(kind="raw", status=502, content_type="text/html", body="<html>bad gateway</html>")
        return Plan(_script(always(html)))
    if name == "upstream_garbage_200":
        return Plan(_script(always(Reply(kind="raw", status=200, content_type="application/json", body="not json"))))
    if head == "bootstrap":
        retries = 1 if name == "bootstrap.retry1" else 0
        step = Step(reply=Reply(kind="stream_error", after=0), times=2)
        return Plan(_script(step), {"streaming": {"keepalive-seconds": 0, "bootstrap-retries": retries}})
    if name == "keepalive.stream":
        streaming = {"streaming": {"keepalive-seconds": 1, "bootstrap-retries": 0}}
        return Plan(_script(always(ok(), stall_ms=3500)), streaming)
    if name == "keepalive.nonstream":
        return Plan(_script(always(ok(), delay_ms=3500)), {"nonstream-keepalive-interval": 1})
    if name == "keepalive.nonstream_error":
        return Plan(_script(always(error(400), delay_ms=3500)), {"nonstream-keepalive-interval": 1})
    if head == "passthrough":
        headers = {"X-E2E-Upstream": "from-upstream", "X-Ratelimit-Remaining": "5"}
        reply = error(400) if name == "passthrough.on_error" else ok()
        return Plan(_script(always(reply, headers=headers)), {"passthrough-headers": name != "passthrough.off"})
    if name.startswith("headers.custom."):
        family = rest[-1]
        custom = {"headers": {"X-E2E-Static": "static-value", "X-E2E-Copied": "$X-Client-Tag"}}
        target = PROVIDER_LISTS.get(family, "openai-compatibility")
        return Plan(_script(), key_patches={target: [custom, custom]})
    return Plan(_script())


CODEX_WEBSOCKETS = {"codex-api-key": [{"websockets": True}, {"websockets": True}]}
WS_ERRORS = {"400": error(400), "401": error(401), "429": error(429, {"Retry-After": "30"}), "500": error(500)}


def _ws_plan(rest: list[str]) -> Plan:
    """``ws.fallback.*`` (HTTP upstream), ``ws.upstream.*`` (profile codex_websockets: the Codex keys speak the
    upstream WebSocket), ``ws.steering.*`` (the same plus ``codex.response-steering``), ``ws.handshake.*``."""
    group, name = (rest[0], ".".join(rest[1:])) if rest else ("", "")
    case = name.rsplit(".", 1)[-1]
    if group == "fallback" and name.startswith("codex."):
        case = name[len("codex.") :]
    reply: Step
    if case in ("thinking",):
        reply = always(ok("thinking"))
    elif case == "tool_roundtrip":
        reply = once(ok("tool"))
    elif case.startswith(("upstream_", "error_")) and case[-3:] in WS_ERRORS:
        reply = always(WS_ERRORS[case[-3:]])
    elif case in ("stream_cut", "close_clean"):
        reply = always(Reply(kind="cut", content="text", after=FAMILY_AFTER["codex"], abort=False))
    elif case == "cut_abort":
        reply = always(Reply(kind="cut", content="text", after=FAMILY_AFTER["codex"], abort=True))
    elif case == "mid_error":
        reply = always(Reply(kind="stream_error", content="text", after=FAMILY_AFTER["codex"]))
    else:
        reply = always(ok("text"))
    plan = Plan(_script(reply))
    if group in ("upstream", "steering"):
        plan.key_patches = {k: [dict(p) for p in v] for k, v in CODEX_WEBSOCKETS.items()}
    if group == "steering":
        plan.profile = {"codex": {"response-steering": True}}
    return plan


def _reqlog_plan(rest: list[str]) -> Plan:
    """``reqlog.*`` (mock-scripts.md, inferred from the goldens): ``request-log: true`` unless ``off``/``forced``;
    failover = one 500 then Ok; ``forced`` (request-log off) and ``upstream_400`` always fail; ``commercial``
    = commercial mode and a mid-stream error; ``ws.*`` as the ws family (upstream = Codex websockets;
    ``upstream_error`` an error 400 frame, ``upstream_abort`` the socket dropped after 6 events, as
    ``ws.upstream.cut_abort``: the golden's frames stop after the sixth and its log reads a 1006 EOF)."""
    name = ".".join(rest)
    if rest and rest[0] == "ws":
        plan = _ws_plan(["upstream" if rest[1].startswith("upstream") else "fallback", *rest[1:]])
        if name == "ws.upstream_error":
            plan.script = _script(always(error(400)))
        elif name == "ws.upstream_abort":
            plan.script = _script(always(Reply(kind="cut", content="text", after=FAMILY_AFTER["codex"], abort=True)))
        plan.profile = {**plan.profile, "request-log": True}
        return plan
    profile: dict[str, Any] = {"request-log": True}
    script = _script()
    if name.endswith(("failover", "failover_stream")):
        script = _script(once(error(500)))
    elif name == "forced.codex.upstream_500":
        script, profile = _script(always(error(500))), {"request-log": False}
    elif name == "gemini.upstream_400":
        script = _script(always(error(400)))
    elif name == "commercial.mid_error":
        script = _script(always(Reply(kind="stream_error", after=FAMILY_AFTER["compat"])))
        profile["commercial-mode"] = True
    elif name == "off.success":
        profile = {"request-log": False}
    return Plan(script, profile)


def _mgmt_plan(rest: list[str]) -> Plan:
    """``mgmt.*``: the default script, except the cooldown scenario (every upstream call fails with a 500)."""
    if ".".join(rest) == "cooldown.reset":
        return Plan(_script(always(error(500))), verbatim=True)
    return Plan(_script(), verbatim=True)


def plan_for(scenario_id: str) -> Plan:
    """The mock script and config profile of a scenario id."""
    parts = scenario_id.split(".")
    group = parts[0]
    if group in ("chat", "completions", "responses", "claude", "gemini", "geminisse") and len(parts) >= 4:
        kind = parts[3]
        if kind in KINDS:
            return Plan(_script(always(ok(kind))))
        return Plan(_script())
    if group == "chunking" and len(parts) >= 2:
        return Plan(_script(always(ok("thinking"), chunking=parts[1])))
    if group == "err" and len(parts) >= 4:
        return _err_plan(parts[2], ".".join(parts[3:]))
    if group == "route":
        return _route_plan(parts[1:])
    if group == "ws":
        return _ws_plan(parts[1:])
    if group == "reqlog":
        return _reqlog_plan(parts[1:])
    if group == "mgmt":
        return _mgmt_plan(parts[1:])
    if group == "history":
        return Plan(_script(always(ok("thinking"))))
    if scenario_id == "models.after_all_keys_unauthorized":
        return Plan(_script(always(error(401))))
    if scenario_id == "models.after_all_keys_rate_limited":
        return Plan(_script(always(error(429))))
    return Plan(_script())
