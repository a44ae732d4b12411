"""The shared login steps in proxyd/oauth/flow.py: the code exchange and `expires_in`."""

from __future__ import annotations

from typing import Any

import pytest

from proxyd.oauth.endpoints import DEFAULT_ENDPOINTS
from proxyd.oauth.flow import FlowContext, FlowError, exchange_tokens, expires_seconds
from proxyd.oauth.http import OAuthHTTPError


class _Client:
    """Answers `json()` with a fixed object (or raises), recording what was sent."""

    def __init__(self, answer: dict[str, Any] | OAuthHTTPError) -> None:
        self.answer = answer
        self.sent: list[dict[str, Any]] = []

    async def json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        self.sent.append({"method": method, "url": url, **kwargs})
        if isinstance(self.answer, OAuthHTTPError):
            raise self.answer
        return self.answer


def _ctx(client: _Client) -> FlowContext:
    return FlowContext(client=client, endpoints=DEFAULT_ENDPOINTS)  # type: ignore[arg-type]


async def test_exchange_returns_the_answer_and_sends_the_body() -> None:
    client = _Client({"access_token": "at", "expires_in": 60})
    answer, issued = await exchange_tokens(_ctx(client), "https://t.example/token", what="x exchange",
                                           failure="Failed", form={"code": "c"})
    assert answer == {"access_token": "at", "expires_in": 60} and issued > 0
    assert client.sent == [{"method": "POST", "url": "https://t.example/token", "what": "x exchange",
                            "json_body": None, "form": {"code": "c"}}]


@pytest.mark.parametrize("answer", [{}, {"access_token": ""}, {"access_token": "  "},
                                    OAuthHTTPError("x exchange", 400, "invalid_grant", "bad code")])
async def test_exchange_failures_carry_the_login_status(answer: Any) -> None:
    with pytest.raises(FlowError) as caught:
        await exchange_tokens(_ctx(_Client(answer)), "https://t.example/token", what="x exchange",
                              failure="Failed to exchange", json_body={"code": "c"})
    assert caught.value.status == "Failed to exchange"


@pytest.mark.parametrize(("value", "seconds"), [(3600, 3600), (59.9, 59), (None, 0), ("3600", 0), (True, 0)])
def test_expires_seconds(value: Any, seconds: int) -> None:
    assert expires_seconds(value) == seconds
