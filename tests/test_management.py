"""Management API: availability, key check order, lockout, client address, config document endpoints.

management.md §1.1, §1.8, §3.1-3.3, §3.6; DECISIONS 9 (client address) and 10 (lockout).
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import aiohttp
import bcrypt
import pytest
from fakes import FakeOpenAIUpstream, compat_config

import proxyd
from proxyd.http.client_address import forwarded_client, is_local, parse_ip
from proxyd.keys import CONFIG_STORE
from proxyd.management import secret as secret_mod
from proxyd.management.access import Lockout, go_duration
from proxyd.management.secret import SecretVerifier

KEY = "s3cret-management-key"
HASH = bcrypt.hashpw(KEY.encode(), bcrypt.gensalt(rounds=4)).decode()  # cheap cost: tests verify many times
REMOTE = "203.0.113.7"
MGMT = "/v0/management"


def config_text(*, secret: str = HASH, allow_remote: bool = False, trusted: bool = False, extra: str = "") -> str:
    lines = [
        "# proxyd test config",
        'host: "127.0.0.1"',
        "port: 8317",
        "api-keys:",
        '  - "client-key"  # the only client',
    ]
    if secret or allow_remote:
        lines += [
            "remote-management:",
            f"  allow-remote: {'true' if allow_remote else 'false'}",
            f'  secret-key: "{secret}"  # management key',
        ]
    if trusted:
        lines += ['trusted-proxies: ["127.0.0.0/8"]']
    return "\n".join(lines) + "\n" + extra


async def call(server: Any, method: str, path: str, *, key: str | None = KEY, header: str = "bearer",
               remote: str | None = None, data: str | bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    hdrs = dict(headers or {})
    if key is not None:
        if header == "bearer":
            hdrs["Authorization"] = f"Bearer {key}"
        elif header == "raw":
            hdrs["Authorization"] = key
        else:
            hdrs["X-Management-Key"] = key
    if remote is not None:
        hdrs["X-Forwarded-For"] = remote
    async with aiohttp.ClientSession() as s, s.request(
        method, f"{server.url}{path}", headers=hdrs, data=data, allow_redirects=False
    ) as r:
        return r.status, dict(r.headers), await r.read()


def as_json(body: bytes) -> Any:
    return json.loads(body)


# --------------------------------------------------------------------------------------------- availability


async def test_disabled_without_secret_is_a_plain_404(proxyd_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANAGEMENT_PASSWORD", raising=False)
    server = await proxyd_factory(config_text(secret=""))
    status, headers, body = await call(server, "GET", f"{MGMT}/config")
    unknown_status, _, unknown_body = await call(server, "GET", "/no/such/route")
    assert status == 404 == unknown_status
    assert body == unknown_body
    assert "X-CPA-VERSION" not in headers


async def test_unknown_management_paths_and_methods_are_404(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text())
    _, _, not_found_body = await call(server, "GET", "/no/such/route")
    for method, path in (("GET", f"{MGMT}/nope"), ("DELETE", f"{MGMT}/config"), ("POST", f"{MGMT}/config.yaml")):
        status, headers, body = await call(server, method, path)
        assert status == 404, (method, path)
        assert body == not_found_body
        assert "X-CPA-VERSION" not in headers


async def test_preflight_needs_no_key(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text())
    status, headers, _ = await call(server, "OPTIONS", f"{MGMT}/config", key=None,
                                    headers={"Origin": "http://panel.example", "Access-Control-Request-Method": "GET"})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "*"


# -------------------------------------------------------------------------------------------- the secret


async def test_plaintext_secret_is_hashed_on_startup_and_keeps_comments(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text(secret="plain-text-key"))
    text = server.config_path.read_text()
    assert "plain-text-key" not in text
    match = re.search(r'secret-key: "(\$2[aby]\$10\$[^"]+)" +# management key', text)
    assert match is not None, text
    assert bcrypt.checkpw(b"plain-text-key", match.group(1).encode())
    assert text.startswith("# proxyd test config\n")
    assert '  - "client-key"  # the only client' in text
    status, _, _ = await call(server, "GET", f"{MGMT}/config", key="plain-text-key")
    assert status == 200
    status, _, _ = await call(server, "GET", f"{MGMT}/config", key=match.group(1))
    assert status == 401  # the hash itself is not a key


@pytest.mark.parametrize("prefix", [b"2a", b"2b"])
async def test_bcrypt_hash_is_accepted_and_left_alone(proxyd_factory: Any, prefix: bytes) -> None:
    hashed = bcrypt.hashpw(KEY.encode(), bcrypt.gensalt(rounds=4, prefix=prefix)).decode()
    server = await proxyd_factory(config_text(secret=hashed))
    before = server.config_path.read_bytes()
    status, _, body = await call(server, "GET", f"{MGMT}/config")
    assert status == 200, body
    assert server.config_path.read_bytes() == before


@pytest.mark.parametrize("header", ["bearer", "raw", "x-management-key"])
async def test_key_sources(proxyd_factory: Any, header: str) -> None:
    server = await proxyd_factory(config_text())
    status, _, _ = await call(server, "GET", f"{MGMT}/config", header=header)
    assert status == 200


async def test_bearer_scheme_is_case_insensitive_and_authorization_wins(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text())
    status, _, _ = await call(server, "GET", f"{MGMT}/config", key=None, headers={"Authorization": f"bEaReR {KEY}"})
    assert status == 200
    # X-Management-Key is read only when Authorization yields nothing.
    status, _, body = await call(server, "GET", f"{MGMT}/config", key=None,
                                 headers={"Authorization": "Bearer wrong", "X-Management-Key": KEY})
    assert (status, as_json(body)) == (401, {"error": "invalid management key"})


async def test_missing_and_invalid_key_bodies(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text())
    status, headers, body = await call(server, "GET", f"{MGMT}/config", key=None)
    assert (status, as_json(body)) == (401, {"error": "missing management key"})
    assert headers["Content-Type"].startswith("application/json")
    status, _, body = await call(server, "GET", f"{MGMT}/config", key="wrong")
    assert (status, as_json(body)) == (401, {"error": "invalid management key"})


async def test_cpa_headers_on_every_management_response(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text())
    for key in (KEY, None, "wrong"):
        _, headers, _ = await call(server, "GET", f"{MGMT}/config", key=key)
        assert headers["X-CPA-VERSION"] == proxyd.__version__
        assert headers["X-CPA-COMMIT"]
        assert headers["X-CPA-BUILD-DATE"]
    _, headers, _ = await call(server, "GET", f"{MGMT}/config.yaml")
    assert headers["X-CPA-VERSION"] == proxyd.__version__


async def test_secret_change_applies_on_reload(proxyd_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANAGEMENT_PASSWORD", raising=False)
    server = await proxyd_factory(config_text(), watch=False)
    store = server.app[CONFIG_STORE]
    server.config_path.write_text(config_text(secret="another-key"))
    assert await store.reload("test")
    assert "another-key" not in server.config_path.read_text()  # hashed on reload too
    assert (await call(server, "GET", f"{MGMT}/config", key="another-key"))[0] == 200
    assert (await call(server, "GET", f"{MGMT}/config"))[0] == 401
    server.config_path.write_text(config_text(secret=""))
    assert await store.reload("test")
    assert (await call(server, "GET", f"{MGMT}/config", key="another-key"))[0] == 404


async def test_management_password_env(proxyd_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANAGEMENT_PASSWORD", "  env-pass  ")
    server = await proxyd_factory(config_text(secret="", trusted=True))
    # Enabled without a secret-key, and remote access is forced on.
    status, _, _ = await call(server, "GET", f"{MGMT}/config", key="env-pass", remote=REMOTE)
    assert status == 200
    status, _, body = await call(server, "GET", f"{MGMT}/config", key="nope", remote=REMOTE)
    assert (status, as_json(body)) == (401, {"error": "invalid management key"})
    assert "env-pass" not in server.config_path.read_text()


# ------------------------------------------------------------------------------ client address and remote


async def test_remote_rejected_when_allow_remote_is_false(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text(trusted=True))
    status, headers, body = await call(server, "GET", f"{MGMT}/config", remote=REMOTE)
    assert (status, as_json(body)) == (403, {"error": "remote management disabled"})
    assert headers["X-CPA-VERSION"] == proxyd.__version__
    # Not a failure: many refusals never ban the address, and a local call still works.
    for _ in range(6):
        await call(server, "GET", f"{MGMT}/config", remote=REMOTE)
    assert (await call(server, "GET", f"{MGMT}/config"))[0] == 200


async def test_forwarded_for_is_ignored_without_trusted_proxies(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text(trusted=False))
    status, _, _ = await call(server, "GET", f"{MGMT}/config", remote=REMOTE)
    assert status == 200  # the peer (127.0.0.1) decides: local


async def test_forwarded_loopback_from_a_remote_client_is_not_local(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text(trusted=True))
    # The client wrote "127.0.0.1" itself; the proxy appended the real address.
    status, _, body = await call(server, "GET", f"{MGMT}/config", remote=f"127.0.0.1, {REMOTE}")
    assert (status, as_json(body)) == (403, {"error": "remote management disabled"})


async def test_remote_allowed_with_allow_remote(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text(trusted=True, allow_remote=True))
    assert (await call(server, "GET", f"{MGMT}/config", remote=REMOTE))[0] == 200


async def test_remote_lockout_after_five_failures(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text(trusted=True, allow_remote=True))
    for _ in range(5):
        status, _, body = await call(server, "GET", f"{MGMT}/config", key="wrong", remote=REMOTE)
        assert (status, as_json(body)) == (401, {"error": "invalid management key"})
    status, headers, body = await call(server, "GET", f"{MGMT}/config", remote=REMOTE)  # even the right key
    assert status == 403
    assert re.fullmatch(r"IP banned due to too many failed attempts\. Try again in (30m0s|29m\d{1,2}s)",
                        as_json(body)["error"]), body
    assert headers["X-CPA-VERSION"] == proxyd.__version__
    # Missing keys count too, per address: another remote address and the local operator are unaffected.
    assert (await call(server, "GET", f"{MGMT}/config", remote="203.0.113.8"))[0] == 200
    assert (await call(server, "GET", f"{MGMT}/config"))[0] == 200


async def test_success_resets_the_failure_count(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text(trusted=True, allow_remote=True))
    for _ in range(4):
        await call(server, "GET", f"{MGMT}/config", key=None, remote=REMOTE)
    assert (await call(server, "GET", f"{MGMT}/config", remote=REMOTE))[0] == 200
    for _ in range(4):
        assert (await call(server, "GET", f"{MGMT}/config", key="x", remote=REMOTE))[0] == 401
    assert (await call(server, "GET", f"{MGMT}/config", remote=REMOTE))[0] == 200


async def test_local_lockout_only_after_twenty_failures(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text())
    for _ in range(19):
        assert (await call(server, "GET", f"{MGMT}/config", key="wrong"))[0] == 401
    assert (await call(server, "GET", f"{MGMT}/config"))[0] == 200  # 19 failures: still fine, and reset
    for _ in range(20):
        assert (await call(server, "GET", f"{MGMT}/config", key="wrong"))[0] == 401
    status, _, body = await call(server, "GET", f"{MGMT}/config")
    assert status == 403
    assert as_json(body)["error"].startswith("IP banned due to too many failed attempts. Try again in ")


# -------------------------------------------------------------------------------------- config endpoints


async def test_config_json_view(proxyd_factory: Any, fake_openai: FakeOpenAIUpstream) -> None:
    text = compat_config(fake_openai.base_url, extra=(
        "remote-management:\n"
        f'  secret-key: "{HASH}"\n'
        'auth-dir: "~/.cli-proxy-api"\n'
        "streaming:\n  keepalive-seconds: 15\n"
    ))
    server = await proxyd_factory(text)
    status, _, body = await call(server, "GET", f"{MGMT}/config")
    assert status == 200
    view = as_json(body)
    for hidden in ("host", "port", "auth-dir", "remote-management", "trusted-proxies"):
        assert hidden not in view
    assert list(view)[:6] == ["proxy-url", "force-model-prefix", "request-log", "api-keys",
                              "passthrough-headers", "streaming"]
    assert list(view)[-1] == "payload"
    assert view["api-keys"] == ["client-key"]
    assert view["streaming"] == {"keepalive-seconds": 15}
    assert view["codex-api-key"] is None and view["gemini-api-key"] is None
    assert "oauth-model-alias" not in view and "oauth-excluded-models" not in view
    assert view["pprof"] == {"enable": False, "addr": "127.0.0.1:8316"}
    assert view["payload"] == {"default": None, "default-raw": None, "override": None, "override-raw": None,
                               "filter": None}
    (provider,) = view["openai-compatibility"]
    assert provider == {
        "name": "fake",
        "base-url": fake_openai.base_url,
        "api-key-entries": [{"api-key": "sk-up-1"}],
        "models": [{"name": "gpt-4o", "alias": "my-model"}, {"name": "gpt-4o-mini", "alias": "mini"}],
    }


async def test_config_yaml_get_returns_the_file(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text())
    status, headers, body = await call(server, "GET", f"{MGMT}/config.yaml")
    assert status == 200
    assert body == server.config_path.read_bytes()
    assert headers["Content-Type"] == "application/yaml; charset=utf-8"
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_config_yaml_get_missing_file(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text(), watch=False)
    server.config_path.unlink()
    status, _, body = await call(server, "GET", f"{MGMT}/config.yaml")
    assert (status, as_json(body)) == (404, {"error": "not_found", "message": "config file not found"})


async def models_status(server: Any, key: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(f"{server.v1}/models",
                                                   headers={"Authorization": f"Bearer {key}"}) as r:
        return r.status


async def test_config_yaml_put_applies_and_keeps_comments(proxyd_factory: Any,
                                                          fake_openai: FakeOpenAIUpstream) -> None:
    mgmt = f'remote-management:\n  secret-key: "{HASH}"\n'
    server = await proxyd_factory(compat_config(fake_openai.base_url, extra=mgmt))
    assert await models_status(server, "brand-new-key") == 401
    new_text = "# uploaded through the panel\n" + compat_config(
        fake_openai.base_url, api_keys=("client-key", "brand-new-key"),
        extra=mgmt + "debug: false  # keep quiet\n")
    status, headers, body = await call(server, "PUT", f"{MGMT}/config.yaml", data=new_text,
                                       headers={"Content-Type": "application/yaml"})
    assert (status, as_json(body)) == (200, {"ok": True, "changed": ["config"]})
    assert headers["X-CPA-VERSION"] == proxyd.__version__
    assert server.config_path.read_text() == new_text  # verbatim, comments included
    assert await models_status(server, "brand-new-key") == 200  # applied at once
    assert await models_status(server, "client-key") == 200


async def test_config_yaml_put_hashes_a_plaintext_secret(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text())
    status, _, _ = await call(server, "PUT", f"{MGMT}/config.yaml", data=config_text(secret="fresh-key"))
    assert status == 200
    text = server.config_path.read_text()
    assert "fresh-key" not in text and "# management key" in text
    assert (await call(server, "GET", f"{MGMT}/config", key="fresh-key"))[0] == 200
    assert (await call(server, "GET", f"{MGMT}/config"))[0] == 401


async def test_config_yaml_put_invalid_config_is_422_and_file_untouched(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text())
    before = server.config_path.read_bytes()
    bad = config_text(extra="port: 70000\nrouting:\n  strategy: sideways\n").replace("port: 8317\n", "")
    status, _, body = await call(server, "PUT", f"{MGMT}/config.yaml", data=bad)
    assert status == 422
    answer = as_json(body)
    assert answer["error"] == "invalid_config"
    lines = answer["message"].split("\n")
    assert len(lines) == 2
    assert any(line.startswith("port:") for line in lines)
    assert any(line.startswith("routing.strategy:") for line in lines)
    assert server.config_path.read_bytes() == before
    assert (await call(server, "GET", f"{MGMT}/config"))[0] == 200  # old config still in effect


@pytest.mark.parametrize("bad", ["port: [unclosed\n", "- just\n- a list\n", ""])
async def test_config_yaml_put_not_yaml_is_400(proxyd_factory: Any, bad: str) -> None:
    server = await proxyd_factory(config_text())
    before = server.config_path.read_bytes()
    status, _, body = await call(server, "PUT", f"{MGMT}/config.yaml", data=bad)
    assert status == 400
    assert as_json(body)["error"] == "invalid_yaml"
    assert server.config_path.read_bytes() == before


async def test_config_yaml_put_requires_the_key(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text())
    before = server.config_path.read_bytes()
    status, _, _ = await call(server, "PUT", f"{MGMT}/config.yaml", key="wrong", data=config_text(secret="mine"))
    assert status == 401
    assert server.config_path.read_bytes() == before


# ---------------------------------------------------------------------------------------------- units


NETS = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.0/8"))


def ip(text: str) -> Any:
    addr = parse_ip(text)
    assert addr is not None
    return addr


@pytest.mark.parametrize(("peer", "xff", "expected"), [
    ("127.0.0.1", ["203.0.113.7"], "203.0.113.7"),
    ("127.0.0.1", ["198.51.100.1, 203.0.113.7, 10.1.2.3"], "203.0.113.7"),  # right-most untrusted
    ("127.0.0.1", ["198.51.100.1", "203.0.113.7"], "203.0.113.7"),  # several header lines
    ("127.0.0.1", ["garbage, 203.0.113.7"], "203.0.113.7"),  # left of the client: never read
    ("127.0.0.1", ["203.0.113.7, garbage"], "127.0.0.1"),  # malformed where read: fail closed
    ("127.0.0.1", ["203.0.113.7:443"], "127.0.0.1"),
    ("127.0.0.1", [], "127.0.0.1"),
    ("127.0.0.1", ["10.0.0.5, 10.0.0.6"], "10.0.0.5"),  # only proxies: the left-most
    ("198.51.100.9", ["127.0.0.1"], "198.51.100.9"),  # untrusted peer: header ignored
    ("::ffff:127.0.0.1", ["2001:db8::1"], "2001:db8::1"),  # mapped peer is trusted like 127.0.0.1
])
def test_forwarded_client(peer: str, xff: list[str], expected: str) -> None:
    assert forwarded_client(ip(peer), xff, NETS) == ip(expected)


def test_forwarded_client_without_trusted_networks() -> None:
    assert forwarded_client(ip("127.0.0.1"), ["203.0.113.7"], ()) == ip("127.0.0.1")


@pytest.mark.parametrize(("addr", "local"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.1", False), ("::", False), ("::ffff:10.0.0.1", False), ("2001:db8::1", False),
])
def test_is_local(addr: str, local: bool) -> None:
    assert is_local(ipaddress.ip_address(addr)) is local


@pytest.mark.parametrize(("seconds", "text"), [
    (1781.2, "29m41s"), (1800, "30m0s"), (45, "45s"), (0, "0s"), (0.4, "0s"), (3600, "1h0m0s"), (3725.6, "1h2m6s"),
])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_lockout_ban_expires_and_resets() -> None:
    now = [1000.0]
    lockout = Lockout(clock=lambda: now[0])
    remote = ip("203.0.113.7")
    for i in range(4):
        assert lockout.failure(remote) == (i + 1, False)
    assert lockout.failure(remote) == (5, True)
    now[0] += 19.4
    left = lockout.banned_for(remote)
    assert left is not None and go_duration(left) == "29m41s"
    now[0] += 1800
    assert lockout.banned_for(remote) is None
    assert lockout.failure(remote) == (1, False)  # the expired ban cleared the count


async def test_verifier_caches_successes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = secret_mod._checkpw

    def counting(key: str, hashed: str) -> bool:
        calls.append(key)
        return real(key, hashed)

    monkeypatch.setattr(secret_mod, "_checkpw", counting)
    verifier = SecretVerifier()
    assert await verifier.verify(KEY, HASH)
    assert await verifier.verify(KEY, HASH)
    assert not await verifier.verify("wrong", HASH)
    assert not await verifier.verify("wrong", HASH)
    assert calls == [KEY, "wrong", "wrong"]
    assert await verifier.verify("plain", "plain")  # a not-yet-hashed secret compares as text
    assert not await verifier.verify("plain", "plainer")
    long_hash = bcrypt.hashpw(b"k" * 72, bcrypt.gensalt(rounds=4)).decode()
    assert await verifier.verify("k" * 80, long_hash)  # bcrypt reads 72 bytes, as Go's compare does
