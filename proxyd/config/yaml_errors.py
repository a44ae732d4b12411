"""YAML syntax errors worded as the reference's parser (Go ``gopkg.in/yaml.v3``) words them.

yaml.v3 is a port of libyaml, so libyaml's scanner and parser problems are the same sentences
(``did not find expected ',' or ']'``). yaml.v3 prints ``yaml: line N: <problem>`` where N is the libyaml
mark's zero-based line of the error's *context* when that is not 0, else of the *problem*, plus one for scanner
errors; a line of 0 prints no ``line N:`` part. Only scanner and parser errors map this way; anything else
(composer errors, a missing libyaml) gives ``None`` and the caller keeps its own wording.
"""

from __future__ import annotations

from ruamel.yaml import YAML
from ruamel.yaml.parser import ParserError
from ruamel.yaml.scanner import ScannerError

__all__ = ["go_yaml_syntax_message"]


def _libyaml_available() -> bool:
    try:
        import _ruamel_yaml  # noqa: F401 - the C extension of ruamel.yaml.clib
    except ImportError:
        return False
    return True


_LIBYAML = _libyaml_available()


def go_yaml_syntax_message(text: str) -> str | None:
    """yaml.v3's error for `text`, or None when it parses, the C parser is missing, or the error is no
    scanner/parser error."""
    if not _LIBYAML:
        return None
    try:
        YAML(typ="safe", pure=False).load(text)
    except (ScannerError, ParserError) as exc:
        scanner = isinstance(exc, ScannerError)
        line = 0
        for mark in (exc.context_mark, exc.problem_mark):
            if mark is not None and mark.line != 0:
                line = mark.line + (1 if scanner else 0)
                break
        problem = str(exc.problem or "").strip() or "unknown problem parsing YAML content"
        return f"yaml: line {line}: {problem}" if line else f"yaml: {problem}"
    except Exception:  # composer and constructor errors have other wordings in yaml.v3
        return None
    return None
