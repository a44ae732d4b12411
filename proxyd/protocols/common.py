"""Small helpers several codecs share: data URLs and tool-argument JSON."""

from __future__ import annotations

import json
import re
from typing import Any

from proxyd.protocols import jsonfast

_DATA_URL = re.compile(
    r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w-]+=[^;,]*)*)(?P<b64>;base64)?,(?P<data>.*)$", re.DOTALL
)


def parse_data_url(url: str) -> tuple[str, str] | None:
    """`data:image/png;base64,AAAA` → (`image/png`, `AAAA`); None when `url` is not a base64 data URL."""
    match = _DATA_URL.match(url)
    if match is None or not match.group("b64"):
        return None
    return match.group("type") or "application/octet-stream", match.group("data")


def to_data_url(media_type: str, data: str) -> str:
    return f"data:{media_type or 'application/octet-stream'};base64,{data}"


def arguments_to_object(arguments: str) -> dict[str, Any]:
    """Tool-call arguments (JSON text) → an object for protocols that carry objects (Claude, Gemini).

    Empty text is `{}`; text that is not a JSON object is wrapped as `{"_raw": text}` rather than lost."""
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_value": value}


def object_to_arguments(value: Any) -> str:
    """Tool-call input/args (an object) → compact JSON text; unwraps what arguments_to_object wrapped."""
    if value is None:
        return "{}"
    if isinstance(value, dict) and set(value) == {"_raw"} and isinstance(value["_raw"], str):
        return value["_raw"]
    if isinstance(value, str):
        return value
    return jsonfast.dumps(value)
