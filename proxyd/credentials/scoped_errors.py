"""`request-scoped-errors`: per-key rules for upstream errors that concern the request, not the key.

A rule applies to an upstream error with its `status` whose body contains one of its `match` strings or
matches one of its `match-regexr` expressions; the first rule that applies decides (routing as the recorded
reference build does):

- `stop`: the error is the answer at once; no other key is tried and the key is not cooled down;
- `stop-and-cooldown`: the same, and the key is cooled down (also under `disable-cooling`, and for statuses
  that never cool it otherwise: then for one minute);
- `continue`: the next key is tried, this one is not cooled down;
- `continue-and-cooldown`: the next key is tried and this one is cooled down as for `stop-and-cooldown`.

Without a matching rule the usual retry and cooldown rules apply (DECISIONS 16).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from proxyd.config import RequestScopedErrorRule

STOP = "stop"
STOP_AND_COOLDOWN = "stop-and-cooldown"
CONTINUE = "continue"
CONTINUE_AND_COOLDOWN = "continue-and-cooldown"
FORCED_COOLDOWN_SECONDS = 60.0  # a forced cooldown of a status that has none of its own


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None  # reported by the config loader; never matches


def _matches(rule: RequestScopedErrorRule, body: str) -> bool:
    if any(needle and needle in body for needle in rule.match):
        return True
    for pattern in rule.match_regexr:
        compiled = _compiled(pattern)
        if compiled is not None and compiled.search(body):
            return True
    return False


def scoped_action(rules: Iterable[RequestScopedErrorRule], status: int, body: str) -> str | None:
    """The action of the first rule that applies to this upstream error, `None` if none does."""
    for rule in rules:
        if rule.status > 0 and rule.status == status and _matches(rule, body):
            return rule.action
    return None


def stops(action: str | None) -> bool:
    """The error is answered at once."""
    return action in (STOP, STOP_AND_COOLDOWN)


def cools(action: str | None) -> bool:
    """The key is cooled down whatever `disable-cooling` says."""
    return action in (STOP_AND_COOLDOWN, CONTINUE_AND_COOLDOWN)


__all__ = ["FORCED_COOLDOWN_SECONDS", "cools", "scoped_action", "stops"]
