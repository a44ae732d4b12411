"""Request logs (management.md §6.3, DECISIONS 13): one file per proxied request, secrets masked, bodies capped.

The pipeline feeds a :class:`RequestLogCapture` (from :meth:`RequestLogWriter.begin`) at its capture points and
calls :meth:`RequestLogCapture.finish` once the answer is written. Then:

- ``request-log: true``: the request is written to ``<path>-<YYYY-MM-DDTHHMMSS>-<request id>.log``;
- otherwise, when the final status is ≥ 400 or an upstream attempt failed, to ``error-<same name>`` and only the
  newest ``error-logs-max-files`` error files are kept (0 keeps all);
- otherwise nothing is written (and, with ``request-log`` off, successful bodies are never even collected).

Every body is capped at ``request-log-max-body-kb`` (default 1024). Request dumps are also deleted when older
than ``request-log-max-age-days`` (default 7) or beyond ``request-log-max-total-size-mb`` (default 1024) in
total, oldest first. Header values and query parameters that carry secrets are shortened to ``abcd...wxyz``.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import attrs
import structlog
from multidict import CIMultiDictProxy

from proxyd import __version__
from proxyd.config.model import Config
from proxyd.fsutil import atomic_write_bytes
from proxyd.usage.stats import go_time

__all__ = [
    "NULL_CAPTURE",
    "NullCapture",
    "RequestLogCapture",
    "RequestLogSettings",
    "RequestLogWriter",
    "describe_credential",
    "enforce_error_limit",
    "enforce_retention",
    "file_name",
    "mask_headers",
    "mask_secret",
    "mask_url",
]

log = structlog.get_logger(__name__)

KIB = 1024
MIB = 1024 * 1024
_SECRET_HEADER_PARTS = ("authorization", "api-key", "apikey", "token", "secret", "cookie")
_SECRET_QUERY_PARTS = ("api-key", "apikey", "api_key", "token", "secret")
_UNSAFE = re.compile(r"[/:<>\"|?*\s\\]+")
_DASHES = re.compile(r"-{2,}")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


# ----------------------------------------------------------------------------------------------- masking


def mask_secret(value: str) -> str:
    """``abcd...wxyz`` for long values, ``****`` for short ones (never the whole secret)."""
    value = value.strip()
    if not value:
        return ""
    if len(value) <= 8:
        return "****"
    return f"{value[:4]}...{value[-4:]}"


def _is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_HEADER_PARTS)


def canonical_header(name: str) -> str:
    """``content-type`` → ``Content-Type`` (Go's canonical form, as the reference prints headers)."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def mask_header(name: str, value: str) -> str:
    if not _is_secret_header(name):
        return value
    if name.lower() in ("authorization", "proxy-authorization"):
        scheme, sep, credential = value.strip().partition(" ")
        if sep and credential:
            return f"{scheme} {mask_secret(credential)}"
    return mask_secret(value)


# Headers the reference's dumps never show: Go keeps Host out of a request's header map, strips
# Transfer-Encoding from a client response, and adds Date/Server/Content-Length to its own answers only
# when writing them (after the dump took the header map).
REQUEST_TRANSPORT_HEADERS = frozenset({"host"})
UPSTREAM_TRANSPORT_HEADERS = frozenset({"transfer-encoding"})
RESPONSE_TRANSPORT_HEADERS = frozenset({"date", "server", "content-length", "transfer-encoding"})


def mask_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]],
                 leave_out: frozenset[str] = frozenset()) -> list[str]:
    """``Name: value`` lines, canonical names sorted, secrets shortened, ``leave_out`` (lower-case) dropped."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    lines = [(canonical_header(name), mask_header(name, str(value))) for name, value in items
             if name.lower() not in leave_out]
    return [f"{name}: {value}" for name, value in sorted(lines, key=lambda item: item[0])]


def _is_secret_query(name: str) -> bool:
    lowered = name.lower()
    return lowered == "key" or any(part in lowered for part in _SECRET_QUERY_PARTS)


def mask_url(url: str) -> str:
    """The URL with secret query parameters (``key``, ``*api-key*``, ``*token*``, ``*secret*``) shortened."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(_is_secret_query(name) for name, _ in pairs):
        return url
    query = "&".join(
        f"{quote(name, safe='')}={mask_secret(value) if _is_secret_query(name) else quote(value, safe='')}"
        for name, value in pairs
    )
    return urlunsplit(parts._replace(query=query))


def describe_credential(credential: Any) -> str:
    """The ``Auth:`` line of an upstream request, as the reference writes it: provider, id, label and the
    shortened key (``provider=claude, auth_id=claude:apikey:…, label=claude-apikey, type=api_key value=sk-c...de-1``;
    OpenAI-compatible keys: ``provider=openai-compatible-<name>``, ``label=<name>``)."""
    provider = getattr(credential, "provider", "") or "unknown"
    cid = getattr(credential, "id", "") or ""
    kind = getattr(credential, "kind", "") or provider
    key = getattr(credential, "api_key", "") or ""
    if kind == "openai-compatibility":
        provider, label = f"openai-compatible-{provider}", provider
    elif ":apikey:" in cid:
        label = f"{kind}-apikey"
    else:
        options = getattr(credential, "options", None) or {}
        label = str(options.get("label") or options.get("email") or kind)
    text = f"provider={provider}, auth_id={cid}, label={label}"
    if key:
        text += f", type=api_key value={mask_secret(key)}"
    return text


# ----------------------------------------------------------------------------------------------- bodies


class _Body:
    """Bytes up to a cap; the rest is only counted."""

    __slots__ = ("cap", "chunks", "kept", "total")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.kept = 0
        self.total = 0

    def add(self, data: bytes | bytearray | memoryview | str | None) -> None:
        if not data:
            return
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        size = len(data)
        self.total += size
        room = self.cap - self.kept
        if room <= 0:
            return
        piece = bytes(data[:room]) if size > room else bytes(data)
        self.chunks.append(piece)
        self.kept += len(piece)

    def render(self) -> str:
        text = b"".join(self.chunks).decode("utf-8", "replace").rstrip("\n")
        if self.total > self.kept:
            text += f"\n[proxyd: body truncated: {self.kept} of {self.total} bytes kept]"
        return text


@attrs.define
class _Upstream:
    timestamp: float
    url: Any
    method: str
    credential: Any  # described (key shortened) when rendered
    headers: Mapping[str, str] | list[tuple[str, str]]  # raw: masked when rendered
    body: _Body


@attrs.define
class _UpstreamAnswer:
    timestamp: float
    status: int
    headers: Mapping[str, str] | list[tuple[str, str]]  # raw: masked when rendered
    body: _Body | None


@attrs.define
class _UpstreamError:
    timestamp: float
    status: int
    text: str


def render_api_requests(requests: list[_Upstream]) -> str:
    """The ``=== API REQUEST n ===`` blocks of the upstream attempts, one blank line apart."""
    blocks = []
    for index, up in enumerate(requests, 1):
        lines = [f"=== API REQUEST {index} ===", f"Timestamp: {go_time(up.timestamp)}",
                 f"Upstream URL: {mask_url(str(up.url))}", f"HTTP Method: {up.method}"]
        if up.credential is not None:
            lines.append(f"Auth: {describe_credential(up.credential)}")
        lines += ["", "Headers:", *mask_headers(up.headers), "", "Body:", up.body.render()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render_api_responses(answers: list[_UpstreamAnswer]) -> str:
    """The ``=== API RESPONSE n ===`` blocks of the upstream answers, one blank line apart."""
    blocks = []
    for index, answer in enumerate(answers, 1):
        lines = [f"=== API RESPONSE {index} ===", f"Timestamp: {go_time(answer.timestamp)}", "",
                 f"Status: {answer.status}", "Headers:", *mask_headers(answer.headers, UPSTREAM_TRANSPORT_HEADERS)]
        if answer.body is not None:
            lines += ["", "Body:", answer.body.render()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# ----------------------------------------------------------------------------------------------- settings


def _extra_number(config: Config, key: str, default: float) -> float:
    value = config.yaml_value(key)  # proxyd's own keys: `extra` today, typed fields if the model adds them
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return default
    return float(value)


@attrs.frozen
class RequestLogSettings:
    """The knobs of request logging, read from one config snapshot."""

    enabled: bool = False
    max_body_bytes: int = 1024 * KIB
    max_age_seconds: float = 7 * 86400.0
    max_total_bytes: int = 1024 * MIB
    error_max_files: int = 10

    @classmethod
    def from_config(cls, config: Config) -> RequestLogSettings:
        return cls(
            enabled=config.request_log,
            max_body_bytes=int(_extra_number(config, "request-log-max-body-kb", 1024) * KIB),
            max_age_seconds=_extra_number(config, "request-log-max-age-days", 7) * 86400.0,
            max_total_bytes=int(_extra_number(config, "request-log-max-total-size-mb", 1024) * MIB),
            error_max_files=max(config.error_logs_max_files, 0),
        )


# ----------------------------------------------------------------------------------------------- capture


def file_name(path: str, started: float, request_id: str, *, error: bool) -> str:
    """``[error-]<sanitized path>-<YYYY-MM-DDTHHMMSS>-<request id>.log``."""
    stem = _DASHES.sub("-", _UNSAFE.sub("-", path.lstrip("/"))).strip("-") or "root"
    rid = _ID_UNSAFE.sub("-", request_id) or "0"
    stamp = time.strftime("%Y-%m-%dT%H%M%S", time.localtime(started))
    return f"{'error-' if error else ''}{stem}-{stamp}-{rid}.log"


def _kept(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> Mapping[str, str] | list[tuple[str, str]]:
    """Headers as a capture keeps them: an immutable multidict view as is (most captures are never written,
    so nothing is copied for them), anything else copied now (its owner may change it later)."""
    if isinstance(headers, CIMultiDictProxy):
        return headers
    return list(headers.items() if isinstance(headers, Mapping) else headers)


class RequestLogCapture:
    """What one request did, collected at the pipeline's capture points (every method is cheap and safe)."""

    def __init__(self, writer: RequestLogWriter | None, settings: RequestLogSettings, request_id: str) -> None:
        self.writer = writer
        self.settings = settings
        self.request_id = request_id
        self.started = time.time()
        self.method = "POST"
        self._url = "/"
        self._headers: Mapping[str, str] | list[tuple[str, str]] = []
        self.body = _Body(settings.max_body_bytes)
        self.upstream_requests: list[_Upstream] = []
        self.upstream_answers: list[_UpstreamAnswer] = []
        self.upstream_errors: list[_UpstreamError] = []
        self.status: int | None = None
        self._response_headers: Mapping[str, str] | list[tuple[str, str]] = []
        self.response_body: _Body | None = None
        self.finished = False

    @property
    def full(self) -> bool:
        """True when every section is kept (``request-log: true``); otherwise only what errors need."""
        return self.settings.enabled

    def client_request(self, method: str, url: str, headers: Mapping[str, str] | Iterable[tuple[str, str]],
                       body: bytes | None = None) -> None:
        """The client's request: method, path with query, headers, and the body if already read."""
        self.method = method
        self._url = url
        self._headers = _kept(headers)
        if self.body.total:
            self.body = _Body(self.settings.max_body_bytes)
        self.body.add(body)

    # Masking and URL parsing happen when a file is written, not on every request (most write none).
    @property
    def url(self) -> str:
        return mask_url(self._url)

    @property
    def path(self) -> str:
        return urlsplit(self._url).path or "/"

    @property
    def headers(self) -> list[str]:
        return mask_headers(self._headers, REQUEST_TRANSPORT_HEADERS)

    @property
    def response_headers(self) -> list[str]:
        return mask_headers(self._response_headers, RESPONSE_TRANSPORT_HEADERS)

    def request_body(self, body: bytes | None) -> None:
        """The client's body, once the pipeline has read it (replaces any earlier one)."""
        if self.body.total:
            self.body = _Body(self.settings.max_body_bytes)
        self.body.add(body)

    def upstream_request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None,
                         credential: Any = None) -> None:
        """One upstream attempt, as sent (call once per attempt, before sending)."""
        captured = _Body(self.settings.max_body_bytes)
        captured.add(body)
        self.upstream_requests.append(_Upstream(time.time(), url, method, credential, _kept(headers), captured))

    def upstream_response(self, status: int, headers: Mapping[str, str]) -> None:
        """The upstream's answer status and headers; its body follows through :meth:`upstream_body`."""
        keep_body = self.full or status >= 400
        self.upstream_answers.append(_UpstreamAnswer(time.time(), status, _kept(headers),
                                                     _Body(self.settings.max_body_bytes) if keep_body else None))

    def upstream_body(self, data: bytes | str | None) -> None:
        """Bytes of the latest upstream answer's body (whole or one stream chunk at a time)."""
        if self.upstream_answers and self.upstream_answers[-1].body is not None:
            self.upstream_answers[-1].body.add(data)

    async def tee(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Pass an upstream body's chunks through unchanged, recording them (``iter_sse(capture.tee(...))``)."""
        async for chunk in chunks:
            self.upstream_body(chunk)
            yield chunk

    def upstream_error(self, status: int, text: bytes | str, headers: Mapping[str, str] | None = None) -> None:
        """A failed upstream attempt (transport error or error status) and its message; with the answer's
        ``headers`` (an error status, not a transport failure) it is also that attempt's ``API RESPONSE n``."""
        if headers is not None and status > 0 and self.full:
            self.upstream_answers.append(_UpstreamAnswer(time.time(), status, list(headers.items()),
                                                         _Body(self.settings.max_body_bytes)))
            self.upstream_answers[-1].body.add(text)  # type: ignore[union-attr]
        if isinstance(text, bytes):
            text = text[: self.settings.max_body_bytes].decode("utf-8", "replace")
        self.upstream_errors.append(_UpstreamError(time.time(), status, text[: self.settings.max_body_bytes]))

    # The upstream WebSocket's events: a plain HTTP request has none (WebSocketSessionCapture records them).
    def api_websocket_request(self, url: str, headers: Mapping[str, str], body: bytes | str | None,
                              credential: Any = None) -> None:
        return None

    def api_websocket_handshake(self, status: int, headers: Mapping[str, str] | None) -> None:
        return None

    def api_websocket_response(self, payload: str | bytes) -> None:
        return None

    def api_websocket_error(self, stage: str, text: str, status: int | None = None) -> None:
        return None

    def client_response(self, status: int, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        """The status and headers sent to the client (call when the response is prepared)."""
        self.status = status
        # A response's own (live) header map is kept, so the file shows what the prepare hooks added (CORS).
        self._response_headers = headers if isinstance(headers, Mapping) else list(headers)
        if self.full or status >= 400:
            self.response_body = _Body(self.settings.max_body_bytes)

    def client_body(self, data: bytes | str | None) -> None:
        """Bytes written to the client (whole body or each stream chunk)."""
        if self.response_body is not None:
            self.response_body.add(data)

    def wanted(self, status: int) -> str | None:
        """``"request"``, ``"error"`` or ``None``: which file, if any, this request produces."""
        if self.settings.enabled:
            return "request"
        if status >= 400 or self.upstream_errors:
            return "error"
        return None

    def finish(self, status: int, body: bytes | str | None = None) -> None:
        """The request is over (final status; ``body`` for answers not seen by :meth:`client_body`)."""
        if self.finished:
            return
        self.finished = True
        if self.status is None:
            self.status = status
        if body is not None:
            if self.response_body is None:
                self.response_body = _Body(self.settings.max_body_bytes)
            self.response_body.add(body)
        kind = self.wanted(status)
        if kind is not None and self.writer is not None:
            self.writer.submit(self, error=kind == "error")

    # ------------------------------------------------------------------ rendering

    def render(self) -> bytes:
        """The file's text (sections as the reference writes them).

        ``Upstream Transport`` only when an upstream was called; with ``request-log`` on every attempt's
        answer is a numbered ``API RESPONSE n``; a request that failed upstream adds one ``API RESPONSE``
        (timestamp and the last upstream error) before them — the only upstream answer of an error-only dump.
        """
        info = ["=== REQUEST INFO ===", f"Version: {__version__}", f"URL: {self.url}", f"Method: {self.method}",
                "Downstream Transport: http"]
        if self.upstream_requests:
            info.append("Upstream Transport: http")
        info.append(f"Timestamp: {go_time(self.started)}")
        groups = [
            "\n".join(info),
            "\n".join(["=== HEADERS ===", *self.headers]),
            "=== REQUEST BODY ===\n" + self.body.render(),
        ]
        if self.upstream_requests:
            groups.append(render_api_requests(self.upstream_requests))
        status = self.status if self.status is not None else 0
        if self.upstream_errors and status >= 400:
            last = self.upstream_errors[-1]
            groups.append(f"=== API RESPONSE ===\nTimestamp: {go_time(last.timestamp)}\n{last.text.rstrip(chr(10))}")
        elif self.upstream_errors and not self.full:  # a failed attempt before a success, in an error dump
            groups.append("\n\n".join(
                f"=== API ERROR RESPONSE ===\nHTTP Status: {err.status}\n{err.text.rstrip(chr(10))}"
                for err in self.upstream_errors))
        if self.upstream_answers and self.full:
            groups.append(render_api_responses(self.upstream_answers))
        response = ["=== RESPONSE ===", f"Status: {status}", *self.response_headers, ""]
        response.append(self.response_body.render() if self.response_body is not None else "")
        groups.append("\n".join(response))
        return ("\n\n\n".join(groups).rstrip("\n") + "\n").encode("utf-8", "replace")


class NullCapture(RequestLogCapture):
    """A capture that records nothing (the default when the logs resource is absent); one shared instance."""

    def __init__(self) -> None:  # no state at all: every method below is a no-op
        self.finished = True

    @property
    def full(self) -> bool:
        return False

    def client_request(self, method: str, url: str, headers: Any, body: bytes | None = None) -> None:
        return None

    def request_body(self, body: bytes | None) -> None:
        return None

    def upstream_request(self, method: str, url: str, headers: Any, body: bytes | None,
                         credential: Any = None) -> None:
        return None

    def upstream_response(self, status: int, headers: Any) -> None:
        return None

    def upstream_body(self, data: bytes | str | None) -> None:
        return None

    async def tee(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            yield chunk

    def upstream_error(self, status: int, text: bytes | str, headers: Mapping[str, str] | None = None) -> None:
        return None

    def client_response(self, status: int, headers: Any) -> None:
        return None

    def client_body(self, data: bytes | str | None) -> None:
        return None

    def finish(self, status: int, body: bytes | str | None = None) -> None:
        return None


NULL_CAPTURE = NullCapture()


# ----------------------------------------------------------------------------------------------- retention


def _dump_files(directory: Path) -> list[tuple[float, int, Path]]:
    """Request dumps (``*.log`` other than the main logs) as ``(mtime, size, path)``, oldest first."""
    from proxyd.logs.app_log import MAIN_LOG, is_rotated_main_log

    found: list[tuple[float, int, Path]] = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return found
    for entry in entries:
        name = entry.name
        if not name.endswith(".log") or name == MAIN_LOG or is_rotated_main_log(name):
            continue
        try:
            st = entry.stat()
        except FileNotFoundError:
            continue
        if entry.is_file():
            found.append((st.st_mtime, st.st_size, Path(entry.path)))
    found.sort()
    return found


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("request log not deleted", file=path.name, error=exc.strerror or type(exc).__name__)
        return False
    return True


def enforce_error_limit(directory: Path, max_files: int) -> int:
    """Keep only the newest ``max_files`` ``error-*.log`` files (0 keeps all); returns how many went."""
    if max_files <= 0:
        return 0
    errors = [item for item in _dump_files(directory) if item[2].name.startswith("error-")]
    excess = len(errors) - max_files
    return sum(_unlink(path) for _, _, path in errors[:max(excess, 0)])


def enforce_retention(directory: Path, settings: RequestLogSettings, now: float | None = None) -> int:
    """Delete request dumps older than the age limit, then the oldest beyond the total size limit."""
    now = time.time() if now is None else now
    removed = 0
    kept: list[tuple[float, int, Path]] = []
    for mtime, size, path in _dump_files(directory):
        if settings.max_age_seconds > 0 and now - mtime > settings.max_age_seconds:
            removed += _unlink(path)
        else:
            kept.append((mtime, size, path))
    if settings.max_total_bytes > 0:
        total = sum(size for _, size, _ in kept)
        for _, size, path in kept:
            if total <= settings.max_total_bytes:
                break
            if _unlink(path):
                removed += 1
            total -= size
    return removed


# ----------------------------------------------------------------------------------------------- writer


class RequestLogWriter:
    """Writes finished captures to the log directory in worker threads and keeps retention."""

    RETENTION_EVERY = 5.0  # seconds between retention passes triggered by writes
    RENDER_DELAY = 0.05  # seconds between a capture's finish and its rendering (see _write_later)

    def __init__(self, directory: Path, settings: RequestLogSettings, *, writable: bool = True) -> None:
        self.directory = Path(directory)
        self.settings = settings
        self.writable = writable  # False when the directory would be under auth-dir
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_retention = 0.0
        self.written = 0

    def begin(self, request_id: str) -> RequestLogCapture:
        """A capture for one request, with the settings current now (``request-log`` is hot)."""
        return RequestLogCapture(self, self.settings, request_id)

    def submit(self, capture: RequestLogCapture, *, error: bool) -> None:
        if not self.writable:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.write(capture, error=error)
            return
        task = loop.create_task(self._write_later(capture, error))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_later(self, capture: RequestLogCapture, error: bool) -> None:
        # The pipeline finishes a capture before aiohttp prepares a non-streamed answer; the file shows the
        # headers the prepare hooks add (CORS), as the reference's does, so it is rendered a moment later.
        await asyncio.sleep(self.RENDER_DELAY)
        await asyncio.to_thread(self._write_bytes, capture, capture.render(), error)

    def write(self, capture: RequestLogCapture, *, error: bool) -> Path | None:
        """Write one capture now (blocking)."""
        return self._write_bytes(capture, capture.render(), error)

    def _write_bytes(self, capture: RequestLogCapture, data: bytes, error: bool) -> Path | None:
        name = file_name(capture.path, capture.started, capture.request_id, error=error)
        target = self.directory / name
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, data, mode=0o600)
            if error:
                enforce_error_limit(self.directory, capture.settings.error_max_files)
            now = time.monotonic()
            if now - self._last_retention >= self.RETENTION_EVERY:
                self._last_retention = now
                enforce_retention(self.directory, capture.settings)
        except OSError as exc:
            log.error("request log not written", file=name, error=exc.strerror or type(exc).__name__)
            return None
        self.written += 1
        return target

    async def drain(self) -> None:
        """Wait for pending writes (shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
