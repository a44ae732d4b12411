"""Per-credential activity in the auth-files listing: `recent_requests` buckets and `quota.signals`
(proxyd/credentials/activity.py, the credential manager, GET /v0/management/auth-files)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from test_auth_files_api import HASH, call
from test_authdir import claude_call, server_config, write

from proxyd.credentials.activity import BUCKET_COUNT, BUCKET_SECONDS, QuotaSignals, RecentRequests, quota_headers
from proxyd.credentials.manager import CredentialManager
from proxyd.credentials.model import Credential
from proxyd.protocols.base import WireProtocol


def test_recent_requests_buckets_oldest_first_with_local_labels() -> None:
    recent = RecentRequests()
    start = 1_800_000_000 - 1_800_000_000 % BUCKET_SECONDS  # a bucket boundary
    recent.record(start + 5, success=True)
    recent.record(start + 6, success=False)
    recent.record(start + BUCKET_SECONDS + 1, success=True)
    snap = recent.snapshot(start + BUCKET_SECONDS + 2)
    assert len(snap) == BUCKET_COUNT
    assert [(b["success"], b["failed"]) for b in snap[-2:]] == [(1, 1), (1, 0)]
    assert all((b["success"], b["failed"]) == (0, 0) for b in snap[:-2])
    begin = time.strftime("%H:%M", time.localtime(start + BUCKET_SECONDS))
    end = time.strftime("%H:%M", time.localtime(start + 2 * BUCKET_SECONDS))
    assert snap[-1]["time"] == f"{begin}-{end}"
    assert all(re.fullmatch(r"\d\d:\d\d-\d\d:\d\d", str(b["time"])) for b in snap)
    # a bucket slot reused after a full turn of the ring starts from zero
    later = start + BUCKET_COUNT * BUCKET_SECONDS + 3
    recent.record(later, success=False)
    latest = recent.snapshot(later)
    assert (latest[-1]["success"], latest[-1]["failed"]) == (0, 1)
    assert sum(int(b["success"]) for b in latest) == 1  # the second bucket's success is 19 buckets old


def test_quota_headers_are_filtered_and_bounded() -> None:
    headers = [("Anthropic-RateLimit-Requests-Remaining", "41"), ("X-Codex-Primary-Used-Percent", "12.5"),
               ("Retry-After", "30"), ("Content-Type", "application/json"), ("Authorization", "Bearer x"),
               ("x-ratelimit-limit-tokens", "y" * 300)]
    found = quota_headers(headers)
    assert found == {"anthropic-ratelimit-requests-remaining": "41", "x-codex-primary-used-percent": "12.5",
                     "retry-after": "30", "x-ratelimit-limit-tokens": "y" * 256}
    assert len(quota_headers({f"x-ratelimit-{i}": "1" for i in range(100)})) == 32
    signals = QuotaSignals()
    signals.observe({"x-ratelimit-remaining": "3"}, 10.0)
    signals.observe({"content-type": "text/plain"}, 20.0)  # an answer without quota headers keeps the last set
    assert (signals.signals, signals.observed_at) == ({"x-ratelimit-remaining": "3"}, 10.0)


def test_manager_records_results_and_signals() -> None:
    now = [1_800_000_000.0]
    manager = CredentialManager(clock=lambda: now[0])
    credential = Credential(id="c1", kind="claude", provider="claude", protocol=WireProtocol.CLAUDE,
                            base_url="http://127.0.0.1:1", api_key="k")
    manager.sync([credential])
    manager.mark_success(credential, "m")
    manager.mark_failure(credential, "m", 500, "boom")
    manager.observe_quota(credential, {"anthropic-ratelimit-tokens-remaining": "99"})
    state = manager.get("c1")
    assert state is not None
    last = state.recent.snapshot(now[0])[-1]
    assert (last["success"], last["failed"]) == (1, 1)
    assert state.quota.signals == {"anthropic-ratelimit-tokens-remaining": "99"}


async def test_auth_files_listing_shows_recent_requests_and_quota(
        tmp_path: Path, proxyd_factory: Any, fake_claude: Any) -> None:
    auth = tmp_path / "auth"
    auth.mkdir()
    write(auth, "c.json", {"type": "claude", "access_token": "sk-ant-oat01-x", "base_url": fake_claude.base_url})
    server = await proxyd_factory(server_config(auth, f'remote-management:\n  secret-key: "{HASH}"\n'))

    async def entry() -> dict[str, Any]:
        status, _, raw = await call(server, "GET", "/auth-files?name=c.json")
        assert status == 200
        (only,) = json.loads(raw)["files"]
        return dict(only)

    fresh = await entry()
    assert fresh["quota"] == {"signals": {}}
    assert len(fresh["recent_requests"]) == BUCKET_COUNT
    assert all((b["success"], b["failed"]) == (0, 0) for b in fresh["recent_requests"])

    fake_claude.response_headers = {"anthropic-ratelimit-requests-remaining": "49"}
    assert (await claude_call(server))[0] == 200
    fake_claude.enqueue_error(500)
    assert (await claude_call(server))[0] == 500
    used = await entry()
    assert (used["success"], used["failed"]) == (1, 1)
    now = used["recent_requests"][-1]
    assert (now["success"], now["failed"]) == (1, 1)
    assert used["quota"]["signals"] == {"anthropic-ratelimit-requests-remaining": "49"}
    assert used["quota"]["observed_at"].endswith("Z")
