"""Management API scalar settings (management.md §3.5), latest-version (§3.6) and model-definitions.

curl-level: an aiohttp client against a running proxyd with ``remote-management.secret-key`` set.
"""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import bcrypt
import pytest

from proxyd.keys import CONFIG_STORE, RUNTIME

KEY = "settings-management-key"
HASH = bcrypt.hashpw(KEY.encode(), bcrypt.gensalt(rounds=4)).decode()
MGMT = "/v0/management"

BASE = f"""\
# settings test config
host: "127.0.0.1"   # loopback only
port: 8317
remote-management:
  secret-key: "{HASH}"
api-keys:
  - "client-key"
# logging
debug: false  # quiet
request-retry: 2
quota-exceeded:
  switch-project: false
custom-extension: {{keep: me}}
"""


async def call(server: Any, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
               key: str | None = KEY) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    async with aiohttp.ClientSession() as s, s.request(method, f"{server.url}{MGMT}{path}", data=data,
                                                       headers=headers) as r:
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text


def current(server: Any) -> Any:
    return server.app[CONFIG_STORE].current


# (route, GET answer key, value to set, attribute reader)
BOOLS = [
    ("debug", "debug", lambda c: c.debug),
    ("logging-to-file", "logging-to-file", lambda c: c.logging_to_file),
    ("usage-statistics-enabled", "usage-statistics-enabled", lambda c: c.usage_statistics_enabled),
    ("request-log", "request-log", lambda c: c.request_log),
    ("ws-auth", "ws-auth", lambda c: c.ws_auth),
    ("force-model-prefix", "force-model-prefix", lambda c: c.force_model_prefix),
    ("quota-exceeded/switch-project", "switch-project", lambda c: c.quota_exceeded.switch_project),
    ("quota-exceeded/switch-preview-model", "switch-preview-model", lambda c: c.quota_exceeded.switch_preview_model),
]
INTS = [
    ("logs-max-total-size-mb", lambda c: c.logs_max_total_size_mb),
    ("error-logs-max-files", lambda c: c.error_logs_max_files),
    ("request-retry", lambda c: c.request_retry),
    ("max-retry-interval", lambda c: c.max_retry_interval),
]


@pytest.mark.parametrize(("route", "key", "read"), BOOLS)
async def test_bool_settings(proxyd_factory: Any, route: str, key: str, read: Any) -> None:
    server = await proxyd_factory(BASE)
    status, body = await call(server, "GET", f"/{route}")
    assert (status, body) == (200, {key: False})
    for method, value in (("PUT", True), ("PATCH", False), ("PUT", True)):
        status, body = await call(server, method, f"/{route}", {"value": value})
        assert (status, body) == (200, {"status": "ok"})
        assert read(current(server)) is value
        assert (await call(server, "GET", f"/{route}")) == (200, {key: value})
    text = server.config_path.read_text()
    assert text.startswith("# settings test config\n")
    assert 'host: "127.0.0.1"   # loopback only' in text
    assert "custom-extension: {keep: me}" in text
    if "/" in route:
        assert f"  {key}: true" in text
    else:
        assert f"\n{route}: true" in text


@pytest.mark.parametrize(("route", "read"), INTS)
async def test_int_settings(proxyd_factory: Any, route: str, read: Any) -> None:
    server = await proxyd_factory(BASE)
    status, body = await call(server, "PUT", f"/{route}", {"value": 7})
    assert (status, body) == (200, {"status": "ok"})
    assert read(current(server)) == 7
    assert (await call(server, "GET", f"/{route}")) == (200, {route: 7})
    status, _ = await call(server, "PATCH", f"/{route}", {"value": 9})
    assert status == 200
    assert f"{route}: 9" in server.config_path.read_text()


@pytest.mark.parametrize("body", [{}, {"value": None}, {"value": "true"}, {"value": 1}, [True], "x"])
async def test_bool_setting_invalid_body(proxyd_factory: Any, body: Any) -> None:
    server = await proxyd_factory(BASE)
    before = server.config_path.read_bytes()
    status, answer = await call(server, "PUT", "/debug", body)
    assert (status, answer) == (400, {"error": "invalid body"})
    assert server.config_path.read_bytes() == before


@pytest.mark.parametrize("body", [{"value": "3"}, {"value": 3.5}, {"value": True}, {"value": None}])
async def test_int_setting_invalid_body(proxyd_factory: Any, body: Any) -> None:
    server = await proxyd_factory(BASE)
    status, answer = await call(server, "PATCH", "/request-retry", body)
    assert (status, answer) == (400, {"error": "invalid body"})
    assert current(server).request_retry == 2


async def test_malformed_json_is_invalid_body(proxyd_factory: Any) -> None:
    server = await proxyd_factory(BASE)
    status, answer = await call(server, "PUT", "/debug", raw=b'{"value": tru')
    assert (status, answer) == (400, {"error": "invalid body"})


async def test_in_place_update_keeps_comment_and_order(proxyd_factory: Any) -> None:
    server = await proxyd_factory(BASE)
    before = server.config_path.read_text()
    assert (await call(server, "PUT", "/debug", {"value": True}))[0] == 200
    after = server.config_path.read_text()
    # ruamel keeps the comment's column, so one more space pads the shorter value
    assert after == before.replace("debug: false  # quiet", "debug: true   # quiet")


async def test_default_values_are_not_added(proxyd_factory: Any) -> None:
    server = await proxyd_factory(BASE)
    before = server.config_path.read_bytes()
    for route, value in (("ws-auth", False), ("error-logs-max-files", 10), ("routing/strategy", "round-robin"),
                         ("max-retry-interval", 30), ("proxy-url", "")):
        assert (await call(server, "PUT", f"/{route}", {"value": value})) == (200, {"status": "ok"}), route
    assert server.config_path.read_bytes() == before


async def test_negative_log_limits_are_normalized(proxyd_factory: Any) -> None:
    server = await proxyd_factory(BASE)
    assert (await call(server, "PUT", "/logs-max-total-size-mb", {"value": 50}))[0] == 200
    assert (await call(server, "PUT", "/logs-max-total-size-mb", {"value": -5}))[0] == 200
    assert current(server).logs_max_total_size_mb == 0
    assert (await call(server, "PUT", "/error-logs-max-files", {"value": 3}))[0] == 200
    assert (await call(server, "PUT", "/error-logs-max-files", {"value": -1}))[0] == 200
    assert current(server).error_logs_max_files == 10
    text = server.config_path.read_text()
    assert "logs-max-total-size-mb: 0" in text and "error-logs-max-files: 10" in text


async def test_negative_request_retry_is_stored_as_given(proxyd_factory: Any) -> None:
    server = await proxyd_factory(BASE)
    assert (await call(server, "PUT", "/request-retry", {"value": -1})) == (200, {"status": "ok"})
    assert "request-retry: -1" in server.config_path.read_text()
    assert current(server).request_retry == 0  # the loader treats a negative count as 0


@pytest.mark.parametrize(("given", "stored"), [("ff", "fill-first"), ("FillFirst", "fill-first"),
                                               ("rr", "round-robin"), ("", "round-robin"),
                                               (" fill-first ", "fill-first")])
async def test_routing_strategy(proxyd_factory: Any, given: str, stored: str) -> None:
    server = await proxyd_factory(BASE + "routing:\n  strategy: round-robin  # how keys rotate\n")
    assert (await call(server, "PUT", "/routing/strategy", {"value": given})) == (200, {"status": "ok"})
    assert (await call(server, "GET", "/routing/strategy")) == (200, {"strategy": stored})
    assert re.search(rf"\n  strategy: {stored} +# how keys rotate\n", server.config_path.read_text())
    assert server.app[RUNTIME].current.selector.name == stored


async def test_routing_strategy_invalid(proxyd_factory: Any) -> None:
    server = await proxyd_factory(BASE)
    before = server.config_path.read_bytes()
    assert (await call(server, "PUT", "/routing/strategy", {"value": "random"})) == (400, {"error": "invalid strategy"})
    assert (await call(server, "PUT", "/routing/strategy", {"value": 1})) == (400, {"error": "invalid body"})
    assert server.config_path.read_bytes() == before


async def test_proxy_url_put_get_delete(proxyd_factory: Any) -> None:
    server = await proxyd_factory(BASE)
    assert (await call(server, "GET", "/proxy-url")) == (200, {"proxy-url": ""})
    assert (await call(server, "PUT", "/proxy-url", {"value": " socks5://127.0.0.1:1080 "})) == (200, {"status": "ok"})
    assert (await call(server, "GET", "/proxy-url")) == (200, {"proxy-url": "socks5://127.0.0.1:1080"})
    assert "proxy-url: socks5://127.0.0.1:1080" in server.config_path.read_text()
    assert (await call(server, "DELETE", "/proxy-url")) == (200, {"status": "ok"})
    assert current(server).proxy_url == ""
    assert "proxy-url: ''" in server.config_path.read_text() or 'proxy-url: ""' in server.config_path.read_text()


async def test_invalid_value_is_refused_and_file_unchanged(proxyd_factory: Any) -> None:
    server = await proxyd_factory(BASE)
    before = server.config_path.read_bytes()
    status, body = await call(server, "PUT", "/proxy-url", {"value": "ftp://proxy.example:21"})
    assert status == 422
    assert body["error"] == "invalid_config"
    assert body["message"].startswith("proxy-url: must be empty")
    assert server.config_path.read_bytes() == before
    assert current(server).proxy_url == ""


async def test_settings_need_the_key(proxyd_factory: Any) -> None:
    server = await proxyd_factory(BASE)
    assert (await call(server, "GET", "/debug", key=None)) == (401, {"error": "missing management key"})
    assert (await call(server, "PUT", "/debug", {"value": True}, key="wrong"))[0] == 401
    assert current(server).debug is False


async def test_unknown_methods_are_404(proxyd_factory: Any) -> None:
    server = await proxyd_factory(BASE)
    assert (await call(server, "DELETE", "/debug"))[0] == 404
    assert (await call(server, "POST", "/request-retry", {"value": 1}))[0] == 404


async def test_change_survives_a_restart(proxyd_factory: Any, tmp_path: Any) -> None:
    server = await proxyd_factory(BASE)
    assert (await call(server, "PUT", "/max-retry-interval", {"value": 12}))[0] == 200
    again = await proxyd_factory(server.config_path.read_text())
    assert current(again).max_retry_interval == 12


async def test_external_edit_is_not_lost(proxyd_factory: Any) -> None:
    """The edit is merged into the file as it is now, even before the watcher reloaded an outside change."""
    server = await proxyd_factory(BASE, watch=False)
    server.config_path.write_text(server.config_path.read_text() + "passthrough-headers: true\n")
    assert (await call(server, "PUT", "/debug", {"value": True}))[0] == 200
    text = server.config_path.read_text()
    assert "passthrough-headers: true" in text and "debug: true" in text
    assert current(server).passthrough_headers is True


# ------------------------------------------------------------------------------------- latest-version


async def test_latest_version_reports_the_running_version_without_network(proxyd_factory: Any) -> None:
    import proxyd

    server = await proxyd_factory(BASE)
    status, body = await call(server, "GET", "/latest-version")
    assert status == 200
    assert body["latest-version"] == proxyd.__version__
    assert body["checked"] is False
    assert "does not check" in body["message"]


# ---------------------------------------------------------------------------------- model-definitions


async def test_model_definitions(proxyd_factory: Any) -> None:
    server = await proxyd_factory(BASE)
    status, body = await call(server, "GET", "/model-definitions/claude")
    assert status == 200
    assert body["channel"] == "claude"
    assert body["models"] and all({"id", "object", "created", "owned_by", "type"} <= set(m) for m in body["models"])
    assert body["models"][0]["object"] == "model"
    status, body = await call(server, "GET", "/model-definitions?channel=Gemini")
    assert status == 200 and body["channel"] == "gemini" and body["models"]
    assert (await call(server, "GET", "/model-definitions/qwen")) == (200, {"channel": "qwen", "models": []})
    assert (await call(server, "GET", "/model-definitions/nope")) == (400, {"error": "unknown channel",
                                                                           "channel": "nope"})
