"""The live configuration: current snapshot, hot reload, file watching and change subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import inspect
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
import bcrypt
import structlog

from proxyd.childcall import Answer, ChildCallError, WarmChild, call_in_child
from proxyd.config.document import ConfigDocument
from proxyd.config.load import LoadResult, Problem, load_config, parse_config_bytes, parse_config_text
from proxyd.config.model import Config, attr_to_yaml_key, config_yaml_keys
from proxyd.config.share import share_unchanged, shared_parts
from proxyd.fsutil import atomic_write_text
from proxyd.fswatch import DirWatch

__all__ = [
    "BCRYPT_PREFIXES",
    "ConfigChange",
    "ConfigLoadError",
    "ConfigStore",
    "Subscriber",
    "diff_configs",
    "hash_plaintext_secret",
    "summarize_changes",
]

log = structlog.get_logger(__name__)

Subscriber = Callable[["ConfigChange"], Awaitable[None] | None]
_StatKey = tuple[int, int, int, int, int]

BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
_BCRYPT_COST = 10  # Go's bcrypt.DefaultCost, as the reference
BCRYPT_MAX_BYTES = 72  # bcrypt reads no more of a password; longer keys are truncated on hash and check alike


def bcrypt_input(secret: str) -> bytes:
    """The bytes bcrypt hashes for `secret` (UTF-8, truncated to 72 bytes; bcrypt 5 refuses longer input)."""
    return secret.encode("utf-8")[:BCRYPT_MAX_BYTES]

# Leaf keys whose values are never logged.
_SECRET_LEAVES = frozenset({"api-key", "api-keys", "secret-key", "upstream-api-key", "headers"})


class ConfigLoadError(Exception):
    """The config file could not be loaded; ``problems`` holds every issue found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        errors = [p for p in self.problems if p.severity == "error"] or list(self.problems)
        lines = "\n".join(f"  {p}" for p in errors)
        return f"invalid configuration ({len(errors)} problem{'s' if len(errors) != 1 else ''}):\n{lines}"


@attrs.frozen
class ConfigChange:
    """What a reload changed: ``changed`` holds top-level YAML key names (``api-keys``, ``routing``…).

    ``summary`` is a human-readable, secret-free list of the differences.
    """

    old: Config
    new: Config
    changed: frozenset[str]
    summary: tuple[str, ...] = ()

    def touches(self, *keys: str) -> bool:
        """True if any of the given top-level keys changed."""
        return any(k in self.changed for k in keys)


def diff_configs(old: Config, new: Config) -> frozenset[str]:
    """Top-level YAML keys (known keys and ``extra`` ones) whose parsed values differ."""
    keys = list(config_yaml_keys()) + sorted(set(old.extra) | set(new.extra))
    return frozenset(k for k in keys if old.yaml_value(k) != new.yaml_value(k))


def _redact_url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        return "<invalid>"
    if parts.username is None and parts.password is None:
        return value
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def _show(leaf: str, value: Any) -> str:
    if leaf.endswith("proxy-url") and isinstance(value, str):
        return repr(_redact_url(value))
    return repr(value)


def _describe(path: str, leaf: str, old: Any, new: Any, out: list[str]) -> None:
    if old == new:
        return
    if leaf in _SECRET_LEAVES:
        if isinstance(old, tuple | dict) and isinstance(new, tuple | dict) and len(old) != len(new):
            out.append(f"{path} count: {len(old)} -> {len(new)}")
        elif isinstance(old, tuple | dict):
            out.append(f"{path}: values updated (count unchanged, redacted)")
        else:
            out.append(f"{path}: updated (redacted)")
        return
    if attrs.has(type(old)) and type(old) is type(new):
        for f in attrs.fields(type(old)):
            key = attr_to_yaml_key(f.name)
            _describe(f"{path}.{key}", key, getattr(old, f.name), getattr(new, f.name), out)
        return
    if isinstance(old, tuple) and isinstance(new, tuple):
        if len(old) != len(new):
            out.append(f"{path}: updated ({len(old)} -> {len(new)} entries)")
        elif all(attrs.has(type(x)) for x in (*old, *new)):
            for i, (a, b) in enumerate(zip(old, new, strict=True)):
                _describe(f"{path}[{i}]", leaf, a, b, out)
        else:
            out.append(f"{path}: updated ({len(new)} entries)")
        return
    if isinstance(old, dict) or isinstance(new, dict) or old is None or new is None:
        size = len(new) if isinstance(new, dict) else 0
        out.append(f"{path}: updated ({size} entries)" if isinstance(new, dict) else f"{path}: updated")
        return
    out.append(f"{path}: {_show(leaf, old)} -> {_show(leaf, new)}")


def summarize_changes(old: Config, new: Config, changed: Iterable[str]) -> tuple[str, ...]:
    """Secret-free descriptions such as ``api-keys count: 2 -> 3`` or ``routing.strategy: …``."""
    out: list[str] = []
    for key in sorted(changed):
        if key in old.extra or key in new.extra:
            out.append(f"{key}: updated")
        else:
            _describe(key, key, old.yaml_value(key), new.yaml_value(key), out)
    return tuple(out)


def hash_plaintext_secret(path: Path, result: LoadResult) -> LoadResult:
    """Replace a plain-text ``remote-management.secret-key`` by its bcrypt hash, in memory and on disk.

    Only that scalar changes in the file (comments and layout are kept). When the write-back
    fails the hash is kept in memory only and the file is hashed again on the next load.
    """
    config = result.config
    if config is None:
        return result
    secret = config.remote_management.secret_key
    if not secret or secret.startswith(BCRYPT_PREFIXES):
        return result
    document = result.document
    if document is None:
        return result
    hashed = bcrypt.hashpw(bcrypt_input(secret), bcrypt.gensalt(rounds=_BCRYPT_COST)).decode("ascii")
    new_config = attrs.evolve(config, remote_management=attrs.evolve(config.remote_management, secret_key=hashed))
    where = ("management", "secret-key") if config.config_version >= 8 else ("remote-management", "secret-key")
    new_document = document.copy()
    new_document.set(where, hashed)
    text = new_document.dump()
    digest = result.sha256
    try:
        atomic_write_text(path, text)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        log.info("management key hashed and written back", path=str(path))
    except OSError as exc:
        log.warning("could not write the hashed management key back", path=str(path),
                    error=exc.strerror or type(exc).__name__)
    return LoadResult(new_config, new_document, result.problems, digest)


@contextlib.asynccontextmanager
async def _short_gil_slices() -> AsyncIterator[None]:
    """While a worker thread parses a reloaded file (a small one, or when the child parse failed), hand the GIL
    back to the event loop every 0.5 ms (Python's default is 5 ms) so requests in flight barely notice it."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, 0.0005))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def _diff(old: Config, new: Config) -> tuple[frozenset[str], tuple[str, ...]]:
    changed = diff_configs(old, new)
    return changed, summarize_changes(old, new, changed)


# Files smaller than this parse in a few milliseconds: a worker thread is cheaper than a fork for them.
CHILD_PARSE_MIN_BYTES = 16 * 1024


@attrs.frozen
class _Parsed:
    """A reload's parse outcome and, when it is valid, its difference to the snapshot in effect."""

    result: LoadResult
    diff: tuple[frozenset[str], tuple[str, ...]] | None


def _parse_and_diff(data: bytes | str, path: str, old: Config, portable: bool = False) -> _Parsed:
    """Parse, validate and diff against `old` (pure: runs in a forked child or a worker thread). `data` is the
    file's bytes, or the text a management write is about to save.

    `portable` drops the round-trip document of a file with warnings (it does not pickle cheaply); the
    result keeps the text and parses the document again on first use, as the fast path's results do.
    The new snapshot holds `old`'s objects wherever nothing changed (:func:`share_unchanged`).
    """
    result = parse_config_text(data, path) if isinstance(data, str) else parse_config_bytes(data, path)
    if result.config is None or not result.ok:
        return _Parsed(attrs.evolve(result, document=None) if portable else result, None)
    config = share_unchanged(old, result.config)
    if portable:
        text = result.text
        if text is None:
            text = data if isinstance(data, str) else data.decode("utf-8-sig")
        result = attrs.evolve(result, config=config, document=None, text=text)
    elif config is not result.config:
        result = attrs.evolve(result, config=config)
    return _Parsed(result, _diff(old, config))


async def _parse_off_loop(data: bytes | str, path: str, old: Config) -> _Parsed:
    """Parse a reloaded file away from the event loop: a big one in a forked child (the loop's thread keeps
    the GIL to itself), else, or when the child gives no answer, in a worker thread with short GIL slices."""
    if len(data) >= CHILD_PARSE_MIN_BYTES:
        try:
            return await call_in_child(_parse_and_diff, data, path, old, True, shared=shared_parts(old))
        except ChildCallError as exc:
            log.warning("config parsed in-process: the child parse failed", path=path, error=str(exc))
    async with _short_gil_slices():
        return await asyncio.to_thread(_parse_and_diff, data, path, old)


class _ParseWorker:
    """The warm child's side of a reload's parse (see :meth:`ConfigStore.start_parse_worker`).

    It knows the snapshots it made (and the one it was forked with) by their hash: the parent names the snapshot
    in effect, the worker diffs the new file against its own copy of it and sends back, by name, the parts that
    did not change (proxyd/config/share.py).
    """

    def __init__(self, config: Config, sha256: str) -> None:
        self._known: dict[str, Config] = {sha256: config}

    def __call__(self, sha256: str, data: bytes | str, path: str) -> Answer:
        old = self._known.get(sha256)
        if old is None:  # the parent swapped in a snapshot made elsewhere
            raise LookupError("not a snapshot of this worker")
        parsed = _parse_and_diff(data, path, old, portable=True)
        if parsed.result.config is not None:  # the next call names this one, or still the old one
            self._known = {sha256: old, parsed.result.sha256: parsed.result.config}
        return parsed, shared_parts(old)


def _subscriber_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class ConfigStore:
    """Owner of ``config.yaml`` at run time.

    ``current`` is an immutable snapshot swapped atomically on reload, so a request that grabbed
    it keeps a consistent view. Reloads and edits are serialized; an invalid file never replaces
    a valid snapshot. Subscribers receive a :class:`ConfigChange` after each effective swap.
    """

    def __init__(self, path: Path, initial: LoadResult, *, hash_secret: bool = True) -> None:
        if not initial.ok or initial.config is None:
            raise ValueError("ConfigStore needs a successfully loaded configuration")
        self._path = Path(path)
        self._hash_secret = hash_secret
        self._result = initial
        self._subscribers: list[Subscriber] = []
        self._lock = asyncio.Lock()
        self._opened_stat = self._stat()
        self._worker: WarmChild | None = None
        self._worker_wanted = False
        self._worker_due = False  # a big file was parsed without the worker: fork one once that is over

    @classmethod
    def open(cls, path: Path, *, hash_secret: bool = True) -> ConfigStore:
        """Load ``path``; raises :class:`ConfigLoadError` listing every problem when it is invalid.

        With ``hash_secret`` a plain-text management key is bcrypt-hashed and written back (§1.1).
        """
        result = load_config(Path(path))
        if not result.ok:
            raise ConfigLoadError(result.problems)
        for problem in result.warnings:
            log.warning("config warning", path=str(path), problem=str(problem), line=problem.line)
        if hash_secret:
            result = hash_plaintext_secret(Path(path), result)
        return cls(Path(path), result, hash_secret=hash_secret)

    # ------------------------------------------------------------------ state

    @property
    def path(self) -> Path:
        """The config file path."""
        return self._path

    @property
    def config_dir(self) -> Path:
        """Directory of the config file (base for relative paths such as ``auth-dir``)."""
        return self._path.parent

    @property
    def current(self) -> Config:
        """The snapshot in effect."""
        config = self._result.config
        assert config is not None
        return config

    @property
    def document(self) -> ConfigDocument:
        """Round-trip document of the snapshot in effect (shared: ``copy()`` before mutating)."""
        document = self._result.document
        assert document is not None
        return document

    @property
    def sha256(self) -> str:
        """Hash of the file content currently in effect."""
        return self._result.sha256

    @property
    def result(self) -> LoadResult:
        """The :class:`LoadResult` in effect (including its warnings)."""
        return self._result

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Register a change callback (sync or async); returns a function that unsubscribes it."""
        self._subscribers.append(fn)

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

        return unsubscribe

    # ------------------------------------------------------------------ reload

    async def reload(self, reason: str = "watch") -> bool:
        """Re-read the file; True when a new snapshot was swapped in."""
        async with self._lock:
            changed = await self._reload_locked(reason)
        self._start_worker_if_due()
        return changed

    async def _reload_locked(self, reason: str) -> bool:
        path = str(self._path)
        try:
            data = self._path.read_bytes()
        except OSError as exc:
            log.error("config reload failed", path=path, reason=reason,
                      problems=[f"cannot read {path}: {exc.strerror or type(exc).__name__}"])
            return False
        if not data.strip():
            log.info("ignoring empty config file", path=path, reason=reason)
            return False
        if hashlib.sha256(data).hexdigest() == self._result.sha256:
            log.debug("config file content unchanged (hash match), skipping reload", path=path, reason=reason)
            return False
        parsed = await self._parse(data)
        return await self._apply(parsed.result, reason, parsed.diff)

    async def _apply(self, result: LoadResult, reason: str,
                     diff: tuple[frozenset[str], tuple[str, ...]] | None = None) -> bool:
        """Swap `result` in; `diff` is its difference to the current snapshot when already worked out."""
        path = str(self._path)
        if not result.ok or result.config is None:
            log.error("config reload failed", path=path, reason=reason,
                      problems=[str(p) for p in result.problems if p.severity == "error"])
            return False
        secret = result.config.remote_management.secret_key
        if self._hash_secret and secret and not secret.startswith(BCRYPT_PREFIXES):
            hashed = await asyncio.to_thread(hash_plaintext_secret, self._path, result)  # bcrypt: ~50 ms
            if hashed is not result:
                result, diff = hashed, None
        old = self.current
        new = result.config
        assert new is not None
        if diff is None:
            diff = await asyncio.to_thread(_diff, old, new)  # big credential lists: off the loop
        changed, summary = diff
        self._result = result  # the swap: one reference assignment
        for problem in result.warnings:
            log.warning("config warning", path=path, problem=str(problem), line=problem.line)
        log.info("config reloaded", path=path, reason=reason, changed=sorted(changed), changes=list(summary))
        if changed:
            await self._notify(ConfigChange(old=old, new=new, changed=changed, summary=summary))
        return True

    async def _notify(self, change: ConfigChange) -> None:
        for fn in list(self._subscribers):
            try:
                outcome = fn(change)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("config subscriber failed", subscriber=_subscriber_name(fn))

    # ------------------------------------------------------------------ the parse worker

    def start_parse_worker(self) -> bool:
        """Parse big files in a process forked in advance from now on (the daemon calls this once it is set up):
        a reload then costs the event loop no fork. It is forked now when the file in effect is big, else after
        the first big one is loaded (small files are parsed in a worker thread). Without it, each big file is
        parsed in a child forked for that reload. True when a worker runs."""
        self._worker_wanted = True
        try:
            big = self._path.stat().st_size >= CHILD_PARSE_MIN_BYTES
        except OSError:
            big = False
        return self._start_worker() if big else False

    def stop_parse_worker(self) -> None:
        """Stop the parse worker (at shutdown)."""
        self._worker_wanted = self._worker_due = False
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def _start_worker(self) -> bool:
        self._worker_due = False
        try:
            self._worker = WarmChild.start(_ParseWorker(self.current, self.sha256))
        except ChildCallError as exc:
            log.warning("no config parse worker", error=str(exc))
            self._worker = None
            return False
        return True

    def _start_worker_if_due(self) -> None:
        """After a reload or a write (its runtime swapped in, the lock released): the worker it lacked."""
        if self._worker_due and self._worker_wanted and self._worker is None and not self._lock.locked():
            self._start_worker()

    async def _parse(self, data: bytes | str) -> _Parsed:
        """`data` parsed, validated and diffed against the snapshot in effect, away from the event loop."""
        path = str(self._path)
        worker = self._worker
        if worker is not None:
            try:
                return await worker.call(self.sha256, data, path, shared=shared_parts(self.current))
            except ChildCallError as exc:  # it did not know the snapshot, or it is gone: a new one afterwards
                log.info("config parse worker replaced", error=str(exc))
                worker.close()
                self._worker = None
                self._worker_due = True
        elif len(data) >= CHILD_PARSE_MIN_BYTES:
            self._worker_due = True
        return await _parse_off_loop(data, path, self.current)

    # ------------------------------------------------------------------ writes

    async def edit(self, mutate: Callable[[ConfigDocument], None], reason: str = "edit") -> LoadResult:
        """Apply ``mutate`` to a copy of the file's document; validate, write atomically, swap.

        The file on disk is re-read first (so edits made outside proxyd are kept). Nothing is written
        when the edited document is invalid; the returned result carries the problems. The round-trip document
        is loaded, mutated and dumped in a worker thread (for a thousand keys that is about a second of CPU):
        ``mutate`` must not touch the event loop.
        """
        async with self._lock:
            async with _short_gil_slices():
                text = await asyncio.to_thread(self._edited_text, mutate)
            result = await self._write_locked(text, reason)
        self._start_worker_if_due()
        return result

    def _edited_text(self, mutate: Callable[[ConfigDocument], None]) -> str:
        collecting = gc.isenabled()
        gc.disable()  # the round-trip tree is hundreds of thousands of objects: no collection walks them meanwhile
        try:
            try:
                document = ConfigDocument.load(self._path)
            except Exception:
                document = self.document.copy()
            mutate(document)
            return document.dump()
        finally:
            if collecting:
                gc.enable()

    async def write_text(self, text: str, reason: str = "write") -> LoadResult:
        """Replace the whole file with ``text`` if it is valid (``PUT /config.yaml``), then swap."""
        async with self._lock:
            result = await self._write_locked(text, reason)
        self._start_worker_if_due()
        return result

    async def _write_locked(self, text: str, reason: str) -> LoadResult:
        parsed = await self._parse(text)
        result = parsed.result
        if not result.ok:
            return result
        if result.sha256 != self._result.sha256:
            await asyncio.to_thread(atomic_write_text, self._path, text)
            await self._apply(result, reason, parsed.diff)
        return result

    # ------------------------------------------------------------------ watching

    def _stat(self) -> _StatKey | None:
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    async def watch(self, poll_interval: float = 0.05, debounce: float = 0.15, idle_poll: float = 2.0) -> None:
        """Poll the file and reload once a change has settled for ``debounce`` seconds (the reference's 150 ms).

        The file's directory is watched with inotify where available (proxyd/fswatch.py): an entry changing
        there wakes the poller at once, and while nothing happens it only stats the file every ``idle_poll``
        seconds (for file systems that send no events). Without inotify it stats every ``poll_interval``
        (50 ms). Either way an edit's latency stays close to the debounce itself.

        Runs until cancelled. Atomic renames are seen (inode is part of the fingerprint); a file
        that disappears is logged once and waited for.
        """
        loop = asyncio.get_running_loop()
        notify = DirWatch(self._path.parent)
        notify.ensure()  # before the first stat: a change between the two still wakes the poller
        last = self._stat()
        pending_since: float | None = loop.time() if last != self._opened_stat else None
        missing_logged = False
        try:
            while True:
                if pending_since is not None:
                    await asyncio.sleep(min(poll_interval, debounce))
                else:
                    await notify.wait(max(idle_poll, poll_interval) if notify.ensure() else poll_interval)
                current = self._stat()
                if current is None:
                    if not missing_logged:
                        log.warning("config file missing; waiting for it to reappear", path=str(self._path))
                        missing_logged = True
                    last = None
                    pending_since = None
                    continue
                if missing_logged:
                    log.info("config file reappeared", path=str(self._path))
                    missing_logged = False
                if current != last:
                    last = current
                    pending_since = loop.time()
                    continue
                if pending_since is not None and loop.time() - pending_since >= debounce:
                    pending_since = None
                    self._opened_stat = current
                    try:
                        await self.reload("watch")
                    except Exception:
                        log.exception("config reload crashed", path=str(self._path))
        finally:
            notify.close()
