"""Credentials from the auth directory: one JSON file per account (management.md §2.4, §4; routing.md §3.2).

`AuthDir` owns the directory: it loads every top-level `*.json`, turns the kinds proxyd can serve (Claude and
Codex OAuth tokens) into `Credential`s, keeps the others visible but unservable, reports broken files without
failing, watches the directory by polling its entries' stat (atomic replaces are seen through the inode), and
tells subscribers when the set of file credentials changed. Every write it makes is atomic (proxyd/fsutil.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import structlog

from proxyd.config import Config
from proxyd.config.load import normalize_excluded, normalize_prefix, validate_proxy_url
from proxyd.credentials.from_config import is_excluded
from proxyd.credentials.model import Credential, ModelMapping
from proxyd.fsutil import atomic_write_bytes
from proxyd.fswatch import DirWatch
from proxyd.models import catalog
from proxyd.protocols.base import WireProtocol

__all__ = [
    "CLAUDE_OAUTH_BASE",
    "CODEX_OAUTH_BASE",
    "UNSUPPORTED_MESSAGE",
    "AuthDir",
    "AuthEntry",
    "AuthFile",
    "auth_index",
    "build_file",
    "codex_claims",
    "codex_section",
    "provider_of",
    "rfc3339",
    "valid_name",
]

log = structlog.get_logger(__name__)

CLAUDE_OAUTH_BASE = "https://api.anthropic.com"
CODEX_OAUTH_BASE = "https://chatgpt.com/backend-api/codex"
UNSUPPORTED_MESSAGE = "unsupported provider"
SERVED = frozenset({"claude", "codex"})
MAX_FILE_BYTES = 4 * 1024 * 1024
RENAME_WAIT = 0.05  # a vanished file is looked at again after 50 ms (an atomic replace in progress)

Subscriber = Callable[[], Awaitable[None] | None]
_Stat = tuple[int, int, int, int]


def auth_index(seed: str) -> str:
    """The stable 16-hex id of a credential (management.md §4.6): first 8 bytes of sha256(seed)."""
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def rfc3339(ts: float) -> str:
    """A Unix time as RFC 3339 in UTC, the way Go prints it (`2026-03-19T08:00:00Z`)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def valid_name(name: str) -> bool:
    """A top-level auth file name: not empty, no path separator, not `.`/`..`, no NUL."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\x00" not in name


def provider_of(type_value: str) -> str:
    """Runtime provider of a file's `type`: lower-cased, `gemini` runs as `gemini-cli` (routing.md §3.2)."""
    provider = type_value.strip().lower()
    return "gemini-cli" if provider == "gemini" else provider


def codex_claims(id_token: Any) -> dict[str, Any]:
    """The OpenAI auth claims of a Codex `id_token` JWT (decoded, not verified: display and plan only)."""
    if not isinstance(id_token, str) or id_token.count(".") < 2:
        return {}
    payload = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return {}
    if not isinstance(claims, dict):
        return {}
    auth = claims.get("https://api.openai.com/auth")
    return dict(auth) if isinstance(auth, dict) else {}


def codex_section(plan_type: str) -> str:
    """Catalogue section for a Codex plan (routing.md §5.2); unknown plans get the widest list."""
    plan = plan_type.strip().lower()
    if plan in ("plus", "free"):
        return f"codex-{plan}"
    if plan in ("team", "business", "go"):
        return "codex-team"
    return "codex-pro"


def _str(data: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _priority(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip():
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _excluded(data: Mapping[str, Any]) -> tuple[str, ...]:
    raw = data.get("excluded_models", data.get("excluded-models"))
    if not isinstance(raw, list):
        return ()
    return normalize_excluded([v for v in raw if isinstance(v, str)])


def file_models(provider: str, section: str, config: Config, file_excluded: Iterable[str]) -> tuple[ModelMapping, ...]:
    """Catalogue models of a file credential: exclusions (file ∪ oauth-excluded-models), then OAuth aliases.

    routing.md §3.10 and §3.8/§5.2: an alias replaces the original id unless the entry has `fork: true`.
    """
    patterns = (*file_excluded, *config.oauth_excluded_models.get(provider, ()))
    aliases = config.oauth_model_alias.get(provider, ())
    out: list[ModelMapping] = []
    for entry in catalog.section(section):
        model_id = str(entry["id"])
        if is_excluded(model_id, patterns):
            continue
        matches = [a for a in aliases if a.name.lower() == model_id.lower()]
        if not matches or any(a.fork for a in matches):
            out.append(ModelMapping(upstream=model_id, exposed=model_id, info=entry))
        for alias in matches:
            info = {**entry, "id": alias.alias}
            out.append(ModelMapping(upstream=model_id, exposed=alias.alias, info=info))
    return tuple(out)


@attrs.frozen
class AuthEntry:
    """One credential as the management list shows it (a file's credential or a Gemini project child)."""

    id: str
    name: str
    type: str
    provider: str
    label: str
    email: str
    account: str
    disabled: bool
    status: str
    status_message: str
    runtime_only: bool
    credential: Credential
    servable: bool
    priority: int | None = None
    note: str = ""
    id_token: Mapping[str, Any] | None = attrs.field(default=None, eq=False, repr=False)
    last_refresh: str = ""


@attrs.frozen
class AuthFile:
    """One file of the auth directory as last read: its content hash, parsed data and credentials."""

    name: str
    path: Path
    sha256: str
    size: int
    mtime: float
    data: Mapping[str, Any] | None = attrs.field(eq=False, repr=False)
    error: str = ""
    entries: tuple[AuthEntry, ...] = ()
    loaded_at: float = attrs.field(factory=time.time, eq=False)


def _parse(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    if not raw.strip():
        return None, "empty file"
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 (byte {exc.start})"
    except ValueError as exc:
        return None, f"invalid JSON: {exc}"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    type_value = data.get("type")
    if not isinstance(type_value, str) or not type_value.strip():
        return None, "missing string field 'type'"
    return data, ""


def _proxy(data: Mapping[str, Any], name: str, config: Config) -> str:
    value = _str(data, "proxy_url")
    if value and not validate_proxy_url(value):
        log.warning("auth file proxy_url invalid; ignored", file=name)
        value = ""
    return value or config.proxy_url


def _credential(name: str, data: Mapping[str, Any], provider: str, config: Config, *, disabled: bool,
                servable: bool, prefix: str, priority: int | None, proxy_url: str) -> Credential:
    options: dict[str, Any] = {"auth_kind": "oauth", "file": name, "disabled": disabled}
    models: tuple[ModelMapping, ...] = ()
    kind, protocol, base, token, owned_by = provider, WireProtocol.OPENAI_CHAT, "", "", provider
    section = ""
    if provider == "claude":
        kind, protocol, owned_by, section = "claude", WireProtocol.CLAUDE, "anthropic", "claude"
        base = _str(data, "base_url") or CLAUDE_OAUTH_BASE
        token = _str(data, "access_token")
    elif provider == "codex":
        kind, protocol, owned_by = "codex", WireProtocol.OPENAI_RESPONSES, "openai"
        base = _str(data, "base_url") or CODEX_OAUTH_BASE
        token = _str(data, "access_token")
        claims = codex_claims(data.get("id_token"))
        plan = str(claims.get("chatgpt_plan_type") or "")
        section = codex_section(plan)
        account = _str(data, "account_id") or str(claims.get("chatgpt_account_id") or "")
        options.update(account_id=account, plan_type=plan)
        options["websockets"] = data.get("websockets") is True  # upstream WebSocket turns (proxyd/ws/upstream.py)
    if servable and not disabled and section:
        models = file_models(provider, section, config, _excluded(data))
    return Credential(
        id=name, kind=kind, provider=provider, protocol=protocol, base_url=base.rstrip("/"), api_key=token,
        proxy_url=proxy_url, prefix=prefix, priority=priority or 0, models=models, owned_by=owned_by,
        source=f"file:{name}", options=options, auth_index=auth_index(f"file:{name}"),
    )


def build_entries(name: str, data: Mapping[str, Any], config: Config) -> tuple[AuthEntry, ...]:
    """The credentials one parsed file yields (routing.md §3.2), servable or not."""
    type_value = str(data["type"]).strip()
    provider = provider_of(type_value)
    email = _str(data, "email")
    label = _str(data, "label") or email or provider
    disabled = data.get("disabled") is True
    prefix = normalize_prefix(_str(data, "prefix"))
    priority = _priority(data.get("priority"))
    note = data.get("note") if isinstance(data.get("note"), str) else ""
    proxy_url = _proxy(data, name, config)
    servable = provider in SERVED and bool(_str(data, "access_token"))
    last_refresh = _str(data, "last_refresh", "lastRefresh", "last_refreshed_at", "lastRefreshedAt")
    id_token = codex_claims(data.get("id_token")) if provider == "codex" else None

    def status_of(off: bool) -> tuple[str, str]:
        if off:
            return "disabled", ""
        if provider not in SERVED:
            return "error", UNSUPPORTED_MESSAGE
        if not servable:
            return "error", "access_token missing"
        return "active", ""

    projects = [p.strip() for p in str(data.get("project_id") or "").split(",") if p.strip()]
    multi = provider == "gemini-cli" and len(projects) > 1
    primary_off = disabled or multi
    status, message = status_of(primary_off)
    primary = AuthEntry(
        id=name, name=name, type=type_value, provider=provider, label=label, email=email,
        account=f"{email} ({projects[0]})" if provider == "gemini-cli" and email and len(projects) == 1 else email,
        disabled=primary_off, status=status, status_message=message, runtime_only=False,
        credential=_credential(name, data, provider, config, disabled=primary_off, servable=servable, prefix=prefix,
                               priority=priority, proxy_url=proxy_url),
        servable=servable, priority=priority, note=note, id_token=id_token or None, last_refresh=last_refresh,
    )
    entries = [primary]
    if multi:
        for project in projects:
            child_id = f"{name}::{project.replace('/', '_').replace(chr(92), '_').replace(' ', '_')}"
            child_status, child_message = status_of(disabled)
            credential = attrs.evolve(primary.credential, id=child_id, source=f"file:{name}",
                                      options={**primary.credential.options, "runtime_only": True,
                                               "gemini_virtual_parent": name, "gemini_virtual_project": project})
            entries.append(attrs.evolve(
                primary, id=child_id, label=f"{label} [{project}]", account=f"{email} ({project})" if email else "",
                disabled=disabled, status=child_status, status_message=child_message, runtime_only=True,
                credential=credential))
    return tuple(entries)


def build_file(path: Path, name: str, raw: bytes, mtime: float, config: Config) -> AuthFile:
    """Parse one file's bytes into an AuthFile (never raises: a broken file carries its `error`)."""
    digest = hashlib.sha256(raw).hexdigest()
    data, error = _parse(raw)
    entries: tuple[AuthEntry, ...] = ()
    if data is not None:
        try:
            entries = build_entries(name, data, config)
        except Exception as exc:  # a malformed field must never take the directory down
            data, error = None, f"cannot build credential: {type(exc).__name__}: {exc}"
    return AuthFile(name=name, path=path, sha256=digest, size=len(raw), mtime=mtime, data=data, error=error,
                    entries=entries)


class AuthDir:
    """Owner of the auth directory at run time: current files, their credentials, watching and writes.

    `files` maps file names (relative to the directory: the credential ids) to the last read `AuthFile`.
    Subscribers are called after every effective change (file added, changed, removed, or reconfigured).
    """

    def __init__(self, directory: Path, config: Config) -> None:
        self.directory = Path(directory)
        self.config = config
        self.files: dict[str, AuthFile] = {}
        self.first_seen: dict[str, float] = {}
        self._stats: dict[str, _Stat] = {}
        self._subscribers: list[Subscriber] = []
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ read model

    def credentials(self) -> tuple[Credential, ...]:
        """Every file credential (servable or not), sorted by id for a stable order."""
        return tuple(e.credential for name in sorted(self.files) for e in self.files[name].entries)

    def entries(self) -> list[AuthEntry]:
        return [e for name in sorted(self.files) for e in self.files[name].entries]

    def problems(self) -> dict[str, str]:
        """Files that could not be loaded, with the reason."""
        return {name: f.error for name, f in sorted(self.files.items()) if f.error}

    def find(self, name_or_id: str) -> tuple[AuthFile, AuthEntry | None] | None:
        """The file (and entry) for a credential id or a file name."""
        for file in self.files.values():
            for entry in file.entries:
                if entry.id == name_or_id:
                    return file, entry
        file = self.files.get(name_or_id)
        if file is None:
            return None
        return file, (file.entries[0] if file.entries else None)

    def path_of(self, name: str) -> Path:
        return self.directory / name

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn) if fn in self._subscribers else None

    # ------------------------------------------------------------------ loading

    def _scan_stats(self) -> dict[str, _Stat]:
        out: dict[str, _Stat] = {}
        try:
            with os.scandir(self.directory) as it:
                for entry in it:
                    if not entry.name.endswith(".json") or entry.name.startswith("."):
                        continue
                    try:
                        st = entry.stat()
                    except OSError:
                        continue
                    if not entry.is_file():
                        continue
                    out[entry.name] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("auth dir unreadable", path=str(self.directory), error=exc.strerror or type(exc).__name__)
            return dict(self._stats)
        return out

    def _read(self, name: str) -> AuthFile | None:
        path = self.path_of(name)
        try:
            with open(path, "rb") as fh:
                raw = fh.read(MAX_FILE_BYTES + 1)
                mtime = os.fstat(fh.fileno()).st_mtime
        except FileNotFoundError:
            return None
        except OSError as exc:
            return AuthFile(name=name, path=path, sha256="", size=0, mtime=0.0, data=None,
                            error=f"cannot read: {exc.strerror or type(exc).__name__}")
        if len(raw) > MAX_FILE_BYTES:
            return AuthFile(name=name, path=path, sha256="", size=len(raw), mtime=mtime, data=None,
                            error=f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        return build_file(path, name, raw, mtime, self.config)

    def load(self) -> None:
        """Read every top-level `*.json` now (startup); broken files are logged and kept as problems."""
        self._stats = self._scan_stats()
        for name in sorted(self._stats):
            file = self._read(name)
            if file is not None:
                self._adopt(name, file, op="load")
        log.info("auth dir loaded", path=str(self.directory), files=len(self.files),
                 credentials=sum(len(f.entries) for f in self.files.values()), problems=len(self.problems()))

    def _adopt(self, name: str, file: AuthFile, *, op: str) -> bool:
        """Install a freshly read file; False when nothing effective changed (hash match)."""
        old = self.files.get(name)
        if old is not None and old.sha256 == file.sha256 and file.sha256:
            self.files[name] = attrs.evolve(old, mtime=file.mtime, size=file.size)
            log.debug("auth file unchanged (hash match), skipping reload", file=name)
            return False
        self.files[name] = file
        self.first_seen.setdefault(name, time.time())
        if file.error:
            log.error("auth file skipped", file=name, op=op, reason=file.error)
        else:
            entry = file.entries[0]
            log.info("auth file loaded", file=name, op=op, provider=entry.provider, status=entry.status,
                     credentials=len(file.entries), models=len(entry.credential.models),
                     **({"status_message": entry.status_message} if entry.status_message else {}))
        return True

    def _forget(self, name: str) -> bool:
        self.first_seen.pop(name, None)
        if self.files.pop(name, None) is None:
            return False
        log.info("auth file removed", file=name)
        return True

    async def refresh(self, names: Iterable[str] | None = None, *, op: str = "write") -> bool:
        """Re-read some files (or rescan everything); notify subscribers when anything changed."""
        async with self._lock:
            changed = await asyncio.to_thread(self._refresh_sync, None if names is None else set(names), op)
        if changed:
            await self._notify()
        return changed

    def _refresh_sync(self, names: set[str] | None, op: str) -> bool:
        stats = self._scan_stats()
        if names is None:
            names = set(stats) | set(self.files)
        changed = False
        vanished = [n for n in names if n not in stats]
        if vanished:  # an atomic replace may be in progress: look again shortly (reference: 50 ms)
            time.sleep(RENAME_WAIT)
            stats = self._scan_stats()
        for name in sorted(names):
            if name in stats:
                file = self._read(name)
                if file is not None:
                    changed |= self._adopt(name, file, op=op)
                    continue
            changed |= self._forget(name)
        self._stats = stats
        return changed

    def reconfigure(self, config: Config) -> None:
        """Adopt a new config (exclusions, aliases, global proxy): rebuild every file's credentials, no I/O."""
        self.config = config
        for name, file in list(self.files.items()):
            if file.data is not None:
                self.files[name] = attrs.evolve(file, entries=build_entries(name, file.data, config))

    async def _notify(self) -> None:
        for fn in list(self._subscribers):
            try:
                outcome = fn()
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("auth dir subscriber failed")

    # ------------------------------------------------------------------ watching

    async def watch(self, poll_interval: float = 0.5, debounce: float = 0.2, idle_poll: float = 10.0) -> None:
        """Poll the directory's entries; re-read files whose stat changed once they settled for `debounce`.

        With inotify (proxyd/fswatch.py) a change in the directory wakes the poller at once and, while
        nothing happens, the entries are scanned only every `idle_poll` seconds (for file systems that send
        no events); without it, every `poll_interval`. Runs until cancelled. Files added, changed or removed
        take effect within about one second.
        """
        loop = asyncio.get_running_loop()
        pending: dict[str, float] = {}
        notify = DirWatch(self.directory)
        notify.ensure()
        last = self._stats
        try:
            await self._watch_loop(loop, notify, pending, last, poll_interval, debounce, idle_poll)
        finally:
            notify.close()

    async def _watch_loop(self, loop: asyncio.AbstractEventLoop, notify: DirWatch, pending: dict[str, float],
                          last: dict[str, _Stat], poll_interval: float, debounce: float, idle_poll: float) -> None:
        while True:
            if pending:
                await asyncio.sleep(min(poll_interval, debounce))
            else:
                await notify.wait(max(idle_poll, poll_interval) if notify.ensure() else poll_interval)
            try:
                # A missing directory (the default one often is) needs no worker thread to be found empty.
                exists = os.path.exists(self.directory)  # noqa: ASYNC240 - one stat, as the config watcher's
                current = await asyncio.to_thread(self._scan_stats) if exists else {}
                now = loop.time()
                for name in set(current) | set(last):
                    if current.get(name) != last.get(name):
                        pending[name] = now
                for name in [n for n in self.files if n not in current and n not in pending]:
                    pending[name] = now  # removed behind our back between scans
                last = current
                ready = [n for n, t in pending.items() if now - t >= debounce]
                if ready:
                    for name in ready:
                        pending.pop(name, None)
                    await self.refresh(ready, op="watch")
                    last = self._stats
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("auth dir watch iteration failed", path=str(self.directory))

    # ------------------------------------------------------------------ writes (management API)

    def _ensure_dir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    async def write(self, name: str, data: bytes) -> AuthFile | None:
        """Atomically write `name` (mode 0600) and load it at once; returns the loaded file."""
        path = self.path_of(name)

        def run() -> None:
            self._ensure_dir()
            atomic_write_bytes(path, data, mode=0o600)

        await asyncio.to_thread(run)
        await self.refresh([name], op="upload")
        return self.files.get(name)

    async def update_json(self, name: str, mutate: Callable[[dict[str, Any]], None]) -> AuthFile | None:
        """Re-read `name`, apply `mutate` to its JSON object, write it back atomically (only when it changed)."""
        path = self.path_of(name)

        def run() -> bool:
            data = json.loads(path.read_bytes().decode("utf-8-sig"))
            if not isinstance(data, dict):
                raise ValueError("auth file is not a JSON object")
            before = json.dumps(data, sort_keys=True)
            mutate(data)
            if json.dumps(data, sort_keys=True) == before:
                return False
            text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
            atomic_write_bytes(path, text.encode("utf-8"))
            return True

        await asyncio.to_thread(run)
        await self.refresh([name], op="update")
        return self.files.get(name)

    async def delete(self, name: str) -> bool:
        """Remove `name` from disk and from the credential set; False when it did not exist."""
        try:
            await asyncio.to_thread(os.unlink, self.path_of(name))
        except FileNotFoundError:
            existed = name in self.files
            await self.refresh([name], op="remove")
            return existed
        await self.refresh([name], op="remove")
        return True
