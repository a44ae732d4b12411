"""The callback hand-off file `<auth-dir>/.oauth-<provider>-<state>.oauth` (management.md §3.12, routing.md §3.4).

A callback route (or ``POST /oauth-callback``) writes ``{"code","state","error"}`` there for a pending session;
the login's background task polls for it, deletes it and carries on. The file format and name are the
reference's, so either implementation can complete a login the other started in the same auth-dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from proxyd.fsutil import atomic_write_bytes
from proxyd.oauth.sessions import SessionStore

__all__ = ["PROVIDER_ALIASES", "Callback", "CallbackTimeout", "handoff_path", "normalize_provider", "read_handoff",
           "valid_state", "wait_for_callback", "write_handoff"]

PROVIDER_ALIASES = {
    "anthropic": "anthropic", "claude": "anthropic",
    "codex": "codex", "openai": "codex",
    "gemini": "gemini", "google": "gemini",
    "iflow": "iflow", "i-flow": "iflow",
    "antigravity": "antigravity", "anti-gravity": "antigravity",
    "qwen": "qwen",
}
_STATE = re.compile(r"[A-Za-z0-9._-]{1,128}")

Callback = dict[str, str]


def normalize_provider(name: str) -> str | None:
    """The canonical provider of a callback (`claude` → `anthropic`, `google` → `gemini`, …); None if unknown."""
    return PROVIDER_ALIASES.get(name.strip().lower())


def valid_state(state: str) -> bool:
    """1-128 characters of `[A-Za-z0-9._-]`, no `..` (it becomes part of a file name)."""
    return bool(_STATE.fullmatch(state)) and ".." not in state


def handoff_path(auth_dir: Path, provider: str, state: str) -> Path:
    return Path(auth_dir) / f".oauth-{provider}-{state}.oauth"


def write_handoff(auth_dir: Path, provider: str, state: str, code: str, error: str) -> Path:
    """Write the hand-off file atomically, mode 0600 (blocking: call it in a thread)."""
    if not valid_state(state):
        raise ValueError("invalid state")
    directory = Path(auth_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = handoff_path(directory, provider, state)
    body = json.dumps({"code": code.strip(), "state": state.strip(), "error": error.strip()}).encode()
    atomic_write_bytes(path, body, mode=0o600)
    return path


def read_handoff(path: Path) -> Callback | None:
    """Read and delete the hand-off file; None while it does not exist. Non-string values read as ``""``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    try:
        data: Any = json.loads(raw)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    return {k: (v.strip() if isinstance(v, str) else "") for k, v in
            ((key, data.get(key)) for key in ("code", "state", "error"))}


class CallbackTimeout(Exception):
    """No callback arrived in time."""


async def wait_for_callback(sessions: SessionStore, auth_dir: Path, provider: str, state: str, *,
                            timeout: float, interval: float) -> Callback | None:  # noqa: ASYNC109
    """Poll for the hand-off file every `interval` s; None once the session stopped being pending.

    Raises CallbackTimeout after `timeout` s.
    """
    path = handoff_path(auth_dir, provider, state)
    deadline = time.monotonic() + timeout
    while True:
        if not sessions.is_pending(state, provider):
            return None
        if time.monotonic() > deadline:
            raise CallbackTimeout()
        found = await asyncio.to_thread(read_handoff, path)
        if found is not None:
            return found
        await asyncio.sleep(interval)
