"""Upstream request heads, byte for byte what aiohttp's ClientSession (as app.py configures it) would send.

aiohttp builds a request head in this order: `Host` (from the URL, replaced in place by a caller's own `Host`),
the caller's headers, then the automatic `Accept: */*` and `Accept-Encoding` (what its parser can decode) where
the caller gave none, `Content-Length`, and `Content-Type: application/octet-stream` for a body without one.
`User-Agent` is in the session's skip list, so it goes out only when the caller sets it; no `Connection`
header is added on HTTP/1.1. The lean client sends the same bytes, so upstreams (and the conformance replay,
which records upstream request heads) see no difference.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import NamedTuple

from aiohttp import ClientRequest, hdrs
from multidict import CIMultiDict
from yarl import URL

# What aiohttp adds when the caller gave neither (Accept-Encoding lists the codings its parser decodes).
_DEFAULTS: tuple[tuple[str, str], ...] = tuple(ClientRequest.DEFAULT_HEADERS.items())
_SKIPPED = frozenset({"user-agent"})  # the session's skip_auto_headers
_BODY_METHODS = frozenset({"PATCH", "POST", "PUT"})
_TOKEN = re.compile(r"[^-!#$%&'*+.^_`|~0-9a-zA-Z]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # CR and LF are counted instead
_GET_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "CONNECT"})
_NUMERIC = re.compile(r"(?i)(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?")
_CACHE_MAX = 4096


class Target(NamedTuple):
    """Where a URL's request goes: the pool key fields, the Host header and the request target."""

    tls: bool
    host: str  # the host to resolve and connect to (no brackets), as aiohttp's raw_host
    port: int
    host_header: str
    path: str  # origin-form request target (path and query, percent-encoded as yarl does)
    ip: bool  # the host is an IP address (no DNS look-up)


_TARGETS: dict[str, Target | None] = {}


def target_of(url: str) -> Target | None:
    """The parsed target of `url`, or None for a URL the lean client leaves to aiohttp (another scheme,
    credentials in the URL, no host, unparseable): aiohttp then answers or fails exactly as before."""
    found = _TARGETS.get(url, False)
    if found is not False:
        return found  # type: ignore[return-value]
    target = _parse(url)
    if len(_TARGETS) >= _CACHE_MAX:
        _TARGETS.clear()
    _TARGETS[url] = target
    return target


def _parse(url: str) -> Target | None:
    try:
        parsed = URL(url)
        host = parsed.raw_host
        host_header = parsed.host_port_subcomponent
        port = parsed.port
    except (ValueError, TypeError):
        return None
    if parsed.scheme not in ("http", "https") or not host or host_header is None or port is None:
        return None
    if parsed.raw_user is not None or parsed.raw_password is not None:
        return None  # aiohttp turns URL credentials into an Authorization header; keep that path there
    if host.endswith(".."):
        host = host.rstrip(".") + "."  # as aiohttp's connector does
    try:
        ipaddress.ip_address(host)
        ip = True
    except ValueError:
        if _NUMERIC.fullmatch(host):
            return None  # a legacy numeric IPv4 form (127.1, 0x7f.1): aiohttp refuses it with its own error
        ip = False
    return Target(parsed.scheme == "https", host, port, host_header, parsed.raw_path_qs, ip)


def usable_headers(headers: Mapping[str, str]) -> bool:
    """False for headers whose framing aiohttp would handle specially (a caller's own Transfer-Encoding)."""
    return "Transfer-Encoding" not in headers and "transfer-encoding" not in headers


_HEADS: dict[tuple[str, Target, tuple[tuple[str, str], ...], bool], tuple[bytes, bytes | None]] = {}
_LENGTH = "\ue000"  # stands for the Content-Length value in a cached head (a private-use character)
_LENGTH_BYTES = _LENGTH.encode()


def request_head(method: str, target: Target, headers: Mapping[str, str], body: bytes | None) -> bytes:
    """The request line and header block for `body` sent with Content-Length (raises ValueError for a bad
    method or a header with control characters, with aiohttp's messages).

    Heads differ per request only in Content-Length, so each (method, target, headers) is built once, cut
    around the length's value."""
    key = (method, target, tuple(headers.items()), body is None)
    parts = _HEADS.get(key)
    if parts is None:
        if any(_LENGTH in part for pair in key[2] for part in pair):
            return _build(method, target, headers, body, str(len(body)) if body is not None else "0")
        head = _build(method, target, headers, body, _LENGTH)
        before, found, after = head.partition(_LENGTH_BYTES)
        parts = (before, after) if found else (head, None)
        if len(_HEADS) >= _CACHE_MAX:
            _HEADS.clear()
        _HEADS[key] = parts
    before, after = parts
    if after is None:
        return before
    return before + str(len(body) if body is not None else 0).encode() + after


def _build(method: str, target: Target, headers: Mapping[str, str], body: bytes | None, length: str) -> bytes:
    method = method.upper()
    if match := _TOKEN.search(method):
        raise ValueError(f"Method cannot contain non-token characters {method!r} (found at least {match.group()!r})")
    # ClientSession._prepare_headers (a dict: each name once), then ClientRequest.update_headers.
    prepared: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        prepared[name] = value
    out: CIMultiDict[str] = CIMultiDict()
    out["Host"] = target.host_header
    for name, value in prepared.items():
        if name in hdrs.HOST_ALL:
            out[name] = value
        else:
            out.add(name, value)
    for name, value in _DEFAULTS:
        if name not in out and name.lower() not in _SKIPPED:
            out[name] = value
    if body is not None:
        if "Content-Length" not in out:
            out["Content-Length"] = length
        if "Content-Type" not in out:  # the bytes payload's own header
            out["Content-Type"] = "application/octet-stream"
    elif method not in _GET_METHODS:
        if "Content-Length" not in out:
            out["Content-Length"] = "0"
        if "Content-Type" not in out and method in _BODY_METHODS:
            out["Content-Type"] = "application/octet-stream"
    text = f"{method} {target.path} HTTP/1.1\r\n" + "".join([f"{k}: {v}\r\n" for k, v in out.items()]) + "\r\n"
    lines = len(out) + 2
    if _CONTROL.search(text) or text.count("\r") != lines or text.count("\n") != lines:
        raise ValueError("Forbidden control character detected in headers. Potential header injection attack.")
    return text.encode("utf-8", "ignore")
