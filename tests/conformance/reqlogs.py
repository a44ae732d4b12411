"""Request-log files (FORMAT.md "request_logs"): read ours, mask them as the recorder did, parse both sides.

The recorder stored each log file as normalised text. Comparing texts line by line would make every
field-order difference of a JSON body and every extra header line a failure far from its cause, so both the
golden's text and ours are parsed into the same structure and compared with the normal comparer:

``[{"<section title>": <section>, ...}, ...]`` — one object per file (oldest first), one key per
``=== TITLE ===`` section. A section is an object of its ``Name: value`` fields (``Timestamp``, ``Status``,
``Upstream URL``…), ``headers`` (lower-cased names; the recorder sorted them, order is not compared) and
``body`` (parsed JSON, an SSE event list in the client's ObsBody form, or the text); timeline sections
(websocket) are a list of such event objects. Pointers therefore read like the steps':
``/request_logs/0/RESPONSE/headers/x-cpa-trace-id``.

Masks applied to our text before parsing (the recorder's, FORMAT.md): ``Timestamp:``/``Version:``/``Date:``
lines, the websocket/session header values, ``"prompt_cache_key":"<key>"``. Harness artefacts: the ``Server``
header of the Python mock's answers (the recorded mock sent none).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .client import parse_sse

_TITLE = re.compile(r"^=== (.+) ===$")
_FIELD = re.compile(r"^([A-Z][A-Za-z ]*?): ?(.*)$")
FIELDS = frozenset(
    {"Version", "URL", "Method", "Downstream Transport", "Upstream Transport", "Timestamp", "Upstream URL",
     "HTTP Method", "Auth", "Status", "HTTP Status", "Event", "Stage", "Error"}
)
_MASKED_LINES = {"Timestamp: ": "Timestamp: <ts>", "Version: ": "Version: <version>", "Date: ": "Date: <date>"}
_MASKED_HEADERS = ("sec-websocket-key", "sec-websocket-accept", "conversation_id", "session_id", "session-id")
_CACHE_KEY = re.compile(r'"prompt_cache_key":"[^"]*"')
_BARE_NOW = re.compile(r"(?<=[:\[,])<now>(?=[,}\]])")
MOCK_SERVER = re.compile(r"^Python/\S+ aiohttp/\S+$")
TIMELINES = ("WEBSOCKET TIMELINE", "API WEBSOCKET TIMELINE")


def read_logs(directory: Path) -> list[str]:
    """Our request-log files, oldest first (``main*.log`` excluded, as the recorder did)."""
    if not directory.is_dir():
        return []
    files = [p for p in directory.glob("*.log") if not p.name.startswith("main")]
    files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
    return [p.read_text(encoding="utf-8", errors="replace") for p in files]


def mask(text: str) -> str:
    """The recorder's masks on one of our log texts."""
    out: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        for prefix, masked in _MASKED_LINES.items():
            if line.startswith(prefix):
                line = masked
                break
        else:
            name, sep, _ = line.partition(": ")
            if sep and name.lower() in _MASKED_HEADERS:
                line = f"{name}: <{name.lower()}>"
        out.append(line)
    return _CACHE_KEY.sub('"prompt_cache_key":"<key>"', "\n".join(out))


def parse_body(lines: list[str]) -> Any:
    """A body: JSON (a golden's bare ``<now>`` read as the placeholder string), SSE events, or the text."""
    while lines and not lines[-1]:
        lines = lines[:-1]
    text = "\n".join(lines)
    if not text:
        return ""
    text = _BARE_NOW.sub('"<now>"', text)
    try:
        return json.loads(text)
    except ValueError:
        pass
    if re.search(r"^(data|event):", text, re.M):
        return {"sse": parse_sse(text + "\n\n", broken=False)}
    return text


def _entry(lines: list[str], *, headers_after_status: bool = False) -> dict[str, Any]:
    """Fields, then an optional ``Headers:`` block, then the body (after ``Body:`` or the first other line)."""
    entry: dict[str, Any] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        if line == "Headers:" or (headers_after_status and "Status" in entry and "headers" not in entry):
            i += line == "Headers:"
            headers: dict[str, str] = {}
            while i < len(lines) and lines[i] and lines[i] != "Body:":
                name, _, value = lines[i].partition(": ")
                headers[name.lower()] = value
                i += 1
            headers = {k: v for k, v in headers.items() if not (k == "server" and MOCK_SERVER.match(v))}
            entry["headers"] = headers
            if headers_after_status:
                entry["body"] = parse_body(lines[i + 1 :])
                return entry
            continue
        if line == "Body:":
            entry["body"] = parse_body(lines[i + 1 :])
            return entry
        m = _FIELD.match(line)
        if m and m.group(1) in FIELDS and m.group(1) not in entry:
            entry[m.group(1)] = m.group(2)
            i += 1
            continue
        entry["body"] = parse_body(lines[i:])
        return entry
    return entry


def _timeline(lines: list[str]) -> list[dict[str, Any]]:
    events: list[list[str]] = []
    for line in lines:
        if line.startswith("Timestamp: ") or not events:
            events.append([])
        events[-1].append(line)
    return [_entry(e) for e in events]


def parse_log(text: str) -> dict[str, Any]:
    """One log text as ``{section title: section}``."""
    sections: dict[str, Any] = {}
    title: str | None = None
    body: list[str] = []

    def close() -> None:
        if title is None:
            return
        if title in TIMELINES:
            sections[title] = _timeline(body)
        elif title in ("HEADERS",):
            sections[title] = {"headers": _entry(["Headers:", *body])["headers"] if body else {}}
        elif title == "REQUEST BODY":
            sections[title] = {"body": parse_body(body)}
        else:
            sections[title] = _entry(body, headers_after_status=title == "RESPONSE")

    for line in text.split("\n"):
        m = _TITLE.match(line)
        if m:
            close()
            title, body = m.group(1), []
            while title in sections:
                title += "'"
        else:
            body.append(line)
    close()
    return sections


def observed_logs(directory: Path) -> list[dict[str, Any]]:
    """Our files, masked and parsed."""
    return [parse_log(mask(text)) for text in read_logs(directory)]


def golden_logs(texts: list[str]) -> list[dict[str, Any]]:
    """The golden's texts, parsed (already masked by the recorder)."""
    return [parse_log(text) for text in texts]
