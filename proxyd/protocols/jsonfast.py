"""JSON for the codecs' answer paths: exactly the stdlib's results, with less overhead per call.

`loads` is `json.loads`, taking orjson's parse where it is known to be the same (orjson turns integers beyond
64 bits into floats, so texts with a run of 19 or more digits go to the stdlib; what orjson refuses, such as
NaN or lone surrogates, too). `dumps` / `dumps_spaced` are `json.dumps(value, ensure_ascii=False)` with compact
or default separators, through one C encoder made once instead of a JSONEncoder per call. `string` is one JSON
string literal as UTF-8 bytes, for encoders that assemble frames from constant pieces.
"""

from __future__ import annotations

import json
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

import orjson

# Digits → "0", every other byte → " ": a run of 19 digits is then a plain substring search.
_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19
_ENCODER = json.JSONEncoder(ensure_ascii=False)


def orjson_exact(data: bytes) -> bool:
    """Whether orjson parses `data` as the stdlib does as far as numbers go: no run of 19 or more digits
    (one could be an integer beyond 64 bits, which orjson turns into a float)."""
    # `.find() < 0`, not `not in`: CPython 3.11's bytes `in` raises and clears a TypeError on every call.
    return data.translate(_DIGITS).find(_LONG_RUN) < 0


def loads(data: bytes) -> Any:
    """`json.loads(data)` for UTF-8 JSON bytes (ValueError on invalid input, as the stdlib raises it)."""
    if data.translate(_DIGITS).find(_LONG_RUN) < 0:  # orjson_exact, inlined: once per stream event
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def _make(item_separator: str, key_separator: str) -> Any:
    if c_make_encoder is None:  # pragma: no cover - CPython always has the C accelerator
        encoder = json.JSONEncoder(ensure_ascii=False, separators=(item_separator, key_separator))
        return lambda value, _level: [encoder.encode(value)]
    # No circular-reference markers: answers are trees built by the codecs.
    return c_make_encoder(None, _ENCODER.default, encode_basestring, None, key_separator, item_separator,
                          False, False, True)


_COMPACT = _make(",", ":")
_SPACED = _make(", ", ": ")


def dumps(value: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, separators=(",", ":"))`."""
    return "".join(_COMPACT(value, 0))


def dumps_spaced(value: Any) -> str:
    """`json.dumps(value, ensure_ascii=False)` (the default `", "` and `": "` separators)."""
    return "".join(_SPACED(value, 0))


def string(text: str) -> bytes:
    """`json.dumps(text, ensure_ascii=False).encode()`: orjson escapes strings the same way; a lone surrogate
    (which orjson refuses) raises UnicodeEncodeError from the stdlib path, as before."""
    try:
        return orjson.dumps(text)
    except TypeError:
        return encode_basestring(text).encode()
