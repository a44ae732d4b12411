"""Loading and validating config.yaml: defaults, baselines, problems, sanitization."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxyd.config import (
    DEFAULT_PANEL_REPOSITORY,
    ClaudeCloak,
    Config,
    ConfigDocument,
    LoadResult,
    ModelAlias,
    Problem,
    load_config,
    parse_config_text,
)

REPO = Path(__file__).resolve().parents[2]
CONFORMANCE = REPO.parent / "shared" / "conformance"
SHIPPED = REPO / "etc" / "config.yaml"


def problems_of(result: LoadResult, severity: str | None = None) -> dict[str, str]:
    return {p.path: p.message for p in result.problems if severity is None or p.severity == severity}


def ok(text: str) -> Config:
    result = parse_config_text(text)
    assert result.ok, [str(p) for p in result.problems]
    assert result.config is not None
    return result.config


# ------------------------------------------------------------------------------------------ defaults


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file_gives_all_defaults(text: str) -> None:
    result = parse_config_text(text)
    assert result.ok
    assert result.problems == ()
    assert result.config == Config()
    c = result.config
    assert c.host == ""
    assert c.port == 8317
    assert c.request_retry == 3
    assert c.max_retry_interval == 30
    assert c.max_retry_credentials == 0
    assert c.error_logs_max_files == 10
    assert c.pprof.addr == "127.0.0.1:8316"
    assert c.remote_management.panel_github_repository == DEFAULT_PANEL_REPOSITORY
    assert c.routing.strategy == "round-robin"
    assert c.request_body_limit_mb == 32
    assert c.request_body_limit_bytes == 32 * 1024 * 1024
    assert c.trusted_proxies == ()
    assert (c.upstream_timeouts.connect_seconds, c.upstream_timeouts.first_byte_seconds,
            c.upstream_timeouts.idle_seconds) == (10, 300, 300)
    assert c.shutdown_grace_seconds == 30
    assert c.api_keys == ()
    assert c.extra == {}


def test_empty_file_on_disk_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("")
    result = load_config(path)
    assert result.ok and result.config == Config()
    assert result.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_explicit_values_override_defaults() -> None:
    c = ok("request-retry: 0\nmax-retry-interval: 0\nport: 9000\nerror-logs-max-files: 0\n")
    assert (c.request_retry, c.max_retry_interval, c.port, c.error_logs_max_files) == (0, 0, 9000, 0)


def test_blank_panel_repo_and_pprof_addr_fall_back_to_defaults() -> None:
    c = ok('remote-management:\n  panel-github-repository: "  "\npprof:\n  addr: ""\n')
    assert c.remote_management.panel_github_repository == DEFAULT_PANEL_REPOSITORY
    assert c.pprof.addr == "127.0.0.1:8316"


# ---------------------------------------------------------------------------------------- baselines


@pytest.mark.parametrize("name", ["config.baseline.legacy.yaml", "config.baseline.v8.yaml"])
def test_conformance_baselines_load(name: str) -> None:
    path = CONFORMANCE / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    result = load_config(path)
    assert result.ok, [str(p) for p in result.problems]
    assert result.problems == ()
    c = result.config
    assert c is not None
    assert c.host == "127.0.0.1"
    assert c.port == 38922
    assert c.auth_dir == "<work>/<scenario-id>/auth"
    assert c.api_keys == ("e2e-client-key", "e2e-client-key-2")
    assert c.remote_management.secret_key == "e2e-mgmt-secret"
    assert c.remote_management.disable_control_panel is True
    assert c.remote_management.allow_remote is False
    assert (c.request_retry, c.max_retry_credentials, c.max_retry_interval) == (2, 0, 0)
    assert c.streaming.keepalive_seconds == 0
    assert [k.api_key for k in c.claude_api_key] == ["sk-claude-1", "sk-claude-2"]
    assert [k.api_key for k in c.codex_api_key] == ["sk-codex-1", "sk-codex-2"]
    assert [k.api_key for k in c.gemini_api_key] == ["sk-gemini-1", "sk-gemini-2"]
    assert {k.base_url for k in c.codex_api_key} == {"http://127.0.0.1:38921/codex"}
    assert {k.base_url for k in c.claude_api_key} == {"http://127.0.0.1:38921/anthropic"}
    (compat,) = c.openai_compatibility
    assert compat.name == "mockcompat"
    assert compat.base_url == "http://127.0.0.1:38921/compat"
    assert [e.api_key for e in compat.api_key_entries] == ["sk-compat-1", "sk-compat-2"]
    assert compat.models == (ModelAlias("mock-gpt-4o", "compat-gpt-4o"), ModelAlias("mock-reason", "compat-reason"))
    assert c.extra == {}
    assert c.config_version == (8 if "v8" in name else 0)


def test_both_baselines_give_the_same_config() -> None:
    legacy, v8 = CONFORMANCE / "config.baseline.legacy.yaml", CONFORMANCE / "config.baseline.v8.yaml"
    if not legacy.exists() or not v8.exists():
        pytest.skip("conformance baselines not available")
    a, b = load_config(legacy).config, load_config(v8).config
    assert a is not None and b is not None
    import attrs

    assert attrs.evolve(a, config_version=8) == b


def test_v8_problems_point_at_nested_paths() -> None:
    result = parse_config_text(
        "config-version: 8\nserver:\n  port: nope\nrouting:\n  retry:\n    request-retry: x\n"
        "api-keys:\n  codex:\n    - name: c\n      keys:\n        - api-key: k\n  xai: []\n"
    )
    found = problems_of(result)
    assert found["server.port"] == "must be an integer"
    assert found["routing.retry.request-retry"] == "must be an integer"
    assert found["api-keys.codex[0].keys[0]"] == "entry without base-url dropped"
    assert "api-keys.xai" in problems_of(result, "warning")


# ----------------------------------------------------------------------------------------- problems


def test_every_problem_is_reported_at_once_with_key_paths() -> None:
    text = """\
port: abc
api-keys: "one-key"
debug: "true"
logging-to-file: 1
routing:
  strategy: sideways
proxy-url: "ftp://proxy.example.com"
trusted-proxies: ["10.0.0.0/8", "not-a-network", "fe80::/10"]
request-body-limit-mb: 0
upstream-timeouts:
  connect-seconds: -1
  idle-seconds: soon
tls:
  enable: true
streaming:
  keepalive-seconds: [1]
openai-compatibility:
  - name: ok
    base-url: https://a.example.com
  - name: bad
    base-url: https://b.example.com
    priority: high
    api-key-entries:
      - api-key: k1
        proxy-url: "no scheme"
gemini-api-key: {api-key: x}
claude-api-key:
  - api-key: c
    headers: [a, b]
    models: "m"
"""
    result = parse_config_text(text)
    assert not result.ok
    assert result.config is None
    assert result.document is not None
    errors = problems_of(result, "error")
    assert errors == {
        "port": "must be an integer",
        "api-keys": "must be a list of strings",
        "debug": "must be a boolean (true or false)",
        "logging-to-file": "must be a boolean (true or false)",
        "routing.strategy": "must be one of round-robin, fill-first, weighted-round-robin",
        "proxy-url": 'must be empty, "direct", "none", or a socks5/http/https URL with a host',
        "trusted-proxies[1]": "not a valid IP address or CIDR network: 'not-a-network'",
        "request-body-limit-mb": "must be an integer >= 1",
        "upstream-timeouts.connect-seconds": "must be a positive number",
        "upstream-timeouts.idle-seconds": "must be a number",
        "tls": "cert and key are required when enable is true",
        "streaming.keepalive-seconds": "must be an integer",
        "openai-compatibility[1].priority": "must be an integer",
        "openai-compatibility[1].api-key-entries[0].proxy-url":
            'must be empty, "direct", "none", or a socks5/http/https URL with a host',
        "gemini-api-key": "must be a list of mappings",
        "claude-api-key[0].headers": "must be a mapping",
        "claude-api-key[0].models": "must be a list of mappings",
    }
    by_path = {p.path: p for p in result.problems}
    assert by_path["port"].line == 1
    assert by_path["routing.strategy"].line == 6
    assert str(by_path["routing.strategy"]) == (
        "routing.strategy: must be one of round-robin, fill-first, weighted-round-robin")


def test_problem_str_format() -> None:
    assert str(Problem("openai-compatibility[1].base-url", "required")) == "openai-compatibility[1].base-url: required"
    assert str(Problem("", "top level must be a mapping")) == "top level must be a mapping"
    assert Problem("a", "b").severity == "error"


@pytest.mark.parametrize("port", ["0", "-1", "65536", "70000"])
def test_port_out_of_range(port: str) -> None:
    result = parse_config_text(f"port: {port}\n")
    assert problems_of(result) == {"port": "must be between 1 and 65535"}
    assert result.config is None


@pytest.mark.parametrize("port", ["1", "65535", "8317"])
def test_port_in_range(port: str) -> None:
    assert ok(f"port: {port}\n").port == int(port)


def test_quoted_number_is_not_an_integer() -> None:
    assert problems_of(parse_config_text('port: "8317"\n')) == {"port": "must be an integer"}


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("false", False), ("yes", True), ("off", False)])
def test_unquoted_bools(text: str, expected: bool) -> None:
    # yaml.v3 (the reference) accepts YAML 1.1 words for bool fields when they are unquoted.
    assert ok(f"debug: {text}\n").debug is expected


@pytest.mark.parametrize("text", ['"true"', "'yes'", "1", "0", "maybe"])
def test_non_bools_rejected(text: str) -> None:
    assert problems_of(parse_config_text(f"debug: {text}\n")) == {"debug": "must be a boolean (true or false)"}


def test_negative_counts_become_zero_with_warnings() -> None:
    result = parse_config_text(
        "request-retry: -1\nmax-retry-credentials: -5\nmax-retry-interval: -3\n"
        "logs-max-total-size-mb: -10\nerror-logs-max-files: -2\nnonstream-keepalive-interval: -1\n"
    )
    assert result.ok
    c = result.config
    assert c is not None
    assert (c.request_retry, c.max_retry_credentials, c.max_retry_interval) == (0, 0, 0)
    assert c.logs_max_total_size_mb == 0
    assert c.error_logs_max_files == 10
    assert c.nonstream_keepalive_interval == 0
    warnings = problems_of(result, "warning")
    assert warnings["request-retry"] == "negative value treated as 0"
    assert warnings["error-logs-max-files"] == "negative value treated as 10"
    assert len(warnings) == 6


def test_yaml_syntax_error_has_line_and_column() -> None:
    result = parse_config_text("host: 127.0.0.1\napi-keys: [a,\nport: 1\n")
    assert not result.ok and result.config is None and result.document is None
    (problem,) = result.problems
    assert re.match(r"YAML syntax error at line \d+, column \d+: ", problem.message)


def test_tab_indentation_is_a_syntax_error() -> None:
    result = parse_config_text("tls:\n\tenable: true\n")
    (problem,) = result.problems
    assert problem.message.startswith("YAML syntax error at line 2")


def test_duplicate_key_error_does_not_echo_values() -> None:
    result = parse_config_text('remote-management:\n  secret-key: "s3cret-one"\n  secret-key: "s3cret-two"\n')
    (problem,) = result.problems
    assert "duplicate key 'secret-key'" in problem.message
    assert "s3cret" not in problem.message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    result = parse_config_text(text)
    assert [str(p) for p in result.problems] == ["top level must be a mapping"]
    assert result.config is None


def test_unreadable_file(tmp_path: Path) -> None:
    result = load_config(tmp_path / "missing.yaml")
    assert not result.ok
    assert result.problems[0].message.startswith("cannot read ")


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"host: \xff\xfe\n")
    result = load_config(path)
    assert not result.ok and "UTF-8" in result.problems[0].message


def test_messages_never_contain_secret_values() -> None:
    result = parse_config_text(
        'proxy-url: "ftp://user:hunter2@proxy"\n'
        "gemini-api-key:\n  - api-key: AIza-secret-value\n    proxy-url: bogus://AIza-secret-value\n"
        "  - api-key: AIza-secret-value\n"
    )
    assert result.problems
    for problem in result.problems:
        assert "hunter2" not in str(problem)
        assert "AIza-secret-value" not in str(problem)


# ---------------------------------------------------------------------------------- normalizations


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("round-robin", "round-robin"), ("RoundRobin", "round-robin"), ("RR", "round-robin"), ("", "round-robin"),
     ("fill-first", "fill-first"), ("FillFirst", "fill-first"), ("ff", "fill-first"), (" FF ", "fill-first")],
)
def test_routing_aliases_normalize(raw: str, expected: str) -> None:
    assert ok(f'routing:\n  strategy: "{raw}"\n').routing.strategy == expected


def test_api_keys_trimmed_deduped_blanks_dropped() -> None:
    assert ok('api-keys: [" a ", "b", "", "a", "  ", b]\n').api_keys == ("a", "b")


@pytest.mark.parametrize("index", [0, 1, 2])
def test_sample_api_keys_are_refused(index: int) -> None:
    keys = ["mine", "other"]
    keys.insert(index, f"your-api-key-{index + 1}")
    result = parse_config_text("api-keys:\n" + "".join(f'  - "{k}"\n' for k in keys))
    assert not result.ok
    assert problems_of(result) == {f"api-keys[{index}]": "this is the example config's sample key; replace it"}


def test_prefix_headers_excluded_models_normalized() -> None:
    result = parse_config_text(
        "claude-api-key:\n"
        "  - api-key: k1\n"
        '    prefix: " /team-a/ "\n'
        "    headers:\n"
        '      " X-One ": " 1 "\n'
        '      X-Empty: ""\n'
        "    excluded-models: [' GPT-5 ', gpt-5, '', '*-Mini']\n"
        "  - api-key: k2\n"
        "    prefix: a/b\n"
    )
    assert result.ok
    c = result.config
    assert c is not None
    first, second = c.claude_api_key
    assert first.prefix == "team-a"
    assert first.headers == {"X-One": "1"}
    assert first.excluded_models == ("gpt-5", "*-mini")
    assert second.prefix == ""
    warnings = problems_of(result, "warning")
    assert warnings["claude-api-key[0].headers.X-Empty"] == "header with an empty name or value dropped"
    assert warnings["claude-api-key[1].prefix"].startswith("must be a single path segment")


@pytest.mark.parametrize("value", ["", "direct", "NONE", "socks5://h:1080", "http://u:p@h:3128", "https://h"])
def test_valid_proxy_urls(value: str) -> None:
    assert ok(f'proxy-url: "{value}"\n').proxy_url == value


@pytest.mark.parametrize("value", ["ftp://h", "socks5://", "h:1080", "http://h:notaport"])
def test_invalid_proxy_urls(value: str) -> None:
    result = parse_config_text(f'codex-api-key:\n  - base-url: https://x\n    proxy-url: "{value}"\n')
    assert problems_of(result) == {
        "codex-api-key[0].proxy-url": 'must be empty, "direct", "none", or a socks5/http/https URL with a host'
    }


def test_trusted_proxies_normalized() -> None:
    c = ok('trusted-proxies: ["10.0.0.0/8", "192.168.1.7", "::1", "10.0.0.0/8"]\n')
    assert c.trusted_proxies == ("10.0.0.0/8", "192.168.1.7/32", "::1/128")
    assert [str(n) for n in c.trusted_networks()] == list(c.trusted_proxies)


def test_proxyd_keys_parse() -> None:
    c = ok("request-body-limit-mb: 8\nupstream-timeouts:\n  connect-seconds: 2.5\nshutdown-grace-seconds: 0\n")
    assert c.request_body_limit_mb == 8
    assert c.upstream_timeouts.connect_seconds == 2.5
    assert c.upstream_timeouts.first_byte_seconds == 300
    assert c.shutdown_grace_seconds == 0


# ------------------------------------------------------------------------------------- sanitization


def test_sanitization_drops_are_warnings_naming_the_path() -> None:
    result = parse_config_text("""\
gemini-api-key:
  - api-key: g1
  - api-key: " g1 "
  - base-url: https://no-key.example.com
  - api-key: g2
codex-api-key:
  - api-key: c1
  - api-key: c2
    base-url: https://codex.example.com
    websockets: true
openai-compatibility:
  - name: nobase
  - name: good
    base-url: https://compat.example.com
    api-keys: [legacy]
vertex-api-key:
  - api-key: v1
    models:
      - {name: a, alias: b}
      - {name: only-name}
  - api-key: v1
  - api-key: v1
    base-url: https://other.example.com
  - base-url: https://no-key.example.com
""")
    assert result.ok
    c = result.config
    assert c is not None
    assert [k.api_key for k in c.gemini_api_key] == ["g1", "g2"]
    assert [(k.api_key, k.websockets) for k in c.codex_api_key] == [("c2", True)]
    assert [p.name for p in c.openai_compatibility] == ["good"]
    assert [(v.api_key, v.base_url) for v in c.vertex_api_key] == [("v1", ""), ("v1", "https://other.example.com")]
    assert c.vertex_api_key[0].models == (ModelAlias("a", "b"),)
    assert problems_of(result, "warning") == {
        "gemini-api-key[1]": "duplicate api-key (same as gemini-api-key[0]); entry dropped",
        "gemini-api-key[2]": "entry without api-key dropped",
        "codex-api-key[0]": "entry without base-url dropped",
        "openai-compatibility[0]": "entry without base-url dropped",
        "openai-compatibility[1].api-keys": "legacy key ignored; use api-key-entries",
        "vertex-api-key[0].models[1]": "model without name or alias dropped",
        "vertex-api-key[1]": "duplicate api-key and base-url (same as vertex-api-key[0]); entry dropped",
        "vertex-api-key[3]": "entry without api-key dropped",
    }
    assert all(p.line is not None for p in result.problems)


def test_legacy_keys_are_warnings_not_errors() -> None:
    result = parse_config_text(
        "generative-language-api-key: [a]\namp-upstream-url: https://x\namp-model-mappings: []\nauth: {}\n"
    )
    assert result.ok
    assert set(problems_of(result, "warning")) == {"generative-language-api-key", "amp-upstream-url",
                                                    "amp-model-mappings", "auth"}
    assert result.config is not None and result.config.extra == {}


def test_oauth_maps_sanitized() -> None:
    result = parse_config_text("""\
oauth-excluded-models:
  Claude: [" Claude-3-* ", claude-3-*]
  codex: []
oauth-model-alias:
  CODEX:
    - {name: gpt-5, alias: g5}
    - {name: gpt-5, alias: g5-again, fork: true}
    - {name: gpt-4, alias: G5}
    - {name: same, alias: SAME}
    - {name: "", alias: x}
  empty: []
""")
    assert result.ok
    c = result.config
    assert c is not None
    assert c.oauth_excluded_models == {"claude": ("claude-3-*",)}
    assert [(a.name, a.alias, a.fork) for a in c.oauth_model_alias["codex"]] == [
        ("gpt-5", "g5", False), ("gpt-5", "g5-again", True)]
    assert set(c.oauth_model_alias) == {"codex"}
    assert problems_of(result, "warning") == {
        "oauth-model-alias.CODEX[2]": "duplicate alias in this channel dropped",
        "oauth-model-alias.CODEX[3]": "entry whose alias equals its name dropped",
        "oauth-model-alias.CODEX[4]": "entry without name or alias dropped",
    }


def test_payload_rules_kept_faithfully_and_bad_raw_dropped() -> None:
    result = parse_config_text("""\
payload:
  default:
    - models: [{name: "gemini-*", protocol: Gemini}]
      params: {"generationConfig.temperature": 0.2, "a.b": {"c": [1, 2]}}
  override-raw:
    - models: [{name: "gpt-*"}]
      params: {"response_format": '{"type":"json_object"}'}
    - models: [{name: "x"}]
      params: {"bad": "{not json"}
  filter:
    - models: [{name: "*"}]
      params: [metadata, "user"]
""")
    assert result.ok
    c = result.config
    assert c is not None
    (rule,) = c.payload.default
    assert rule.models[0].name == "gemini-*" and rule.models[0].protocol == "gemini"
    assert rule.params == {"generationConfig.temperature": 0.2, "a.b": {"c": [1, 2]}}
    assert type(rule.params["a.b"]) is dict
    assert [r.params for r in c.payload.override_raw] == [{"response_format": '{"type":"json_object"}'}]
    assert c.payload.filter[0].params == ("metadata", "user")
    assert problems_of(result, "warning") == {"payload.override-raw[1]": "payload rule dropped: invalid raw JSON"}


def test_claude_cloak_and_ampcode() -> None:
    c = ok("""\
claude-api-key:
  - api-key: k
    cloak: {mode: ALWAYS, strict-mode: true, sensitive-words: [" API ", ""], cache-user-id: false}
  - api-key: k2
ampcode:
  upstream-url: https://ampcode.com
  upstream-api-keys:
    - upstream-api-key: up
      api-keys: [c1, " c2 "]
  model-mappings:
    - {from: a, to: b, regex: true}
  restrict-management-to-localhost: true
""")
    assert c.claude_api_key[0].cloak == ClaudeCloak(mode="always", strict_mode=True, sensitive_words=("API",),
                                                    cache_user_id=False)
    assert c.claude_api_key[1].cloak is None
    assert c.ampcode.upstream_api_keys[0].api_keys == ("c1", "c2")
    assert (c.ampcode.model_mappings[0].from_, c.ampcode.model_mappings[0].regex) == ("a", True)
    assert c.ampcode.restrict_management_to_localhost is True


def test_unknown_top_level_keys_kept_in_extra() -> None:
    result = parse_config_text("host: h\nfuture-feature:\n  enabled: true\n  list: [1, 2]\nplugins: {dir: p}\n")
    assert result.ok and result.problems == ()
    c = result.config
    assert c is not None
    assert c.extra == {"future-feature": {"enabled": True, "list": [1, 2]}, "plugins": {"dir": "p"}}
    assert c.yaml_value("future-feature") == {"enabled": True, "list": [1, 2]}
    assert c.yaml_value("host") == "h"


def test_resolved_auth_dir(tmp_path: Path) -> None:
    home = Path("~").expanduser()
    assert ok('auth-dir: "~/.proxyd/auth"\n').resolved_auth_dir(tmp_path) == home / ".proxyd" / "auth"
    assert ok("auth-dir: auth\n").resolved_auth_dir(tmp_path) == tmp_path / "auth"
    assert ok("auth-dir: ./a/../b\n").resolved_auth_dir(tmp_path) == tmp_path / "b"
    assert ok("auth-dir: /srv/auth\n").resolved_auth_dir(tmp_path) == Path("/srv/auth")
    assert ok("").resolved_auth_dir(tmp_path) == home / ".cli-proxy-api"


def test_scalar_strings_accept_numbers() -> None:
    c = ok("gemini-api-key:\n  - api-key: 12345\nclaude-header-defaults:\n  timeout: 600\n")
    assert c.gemini_api_key[0].api_key == "12345"
    assert c.claude_header_defaults.timeout == "600"


# ------------------------------------------------------------------------------------ shipped config


def test_shipped_config_loads_without_any_problem() -> None:
    result = load_config(SHIPPED)
    assert result.problems == ()
    c = result.config
    assert c is not None
    assert (c.host, c.port, c.auth_dir, c.api_keys) == ("127.0.0.1", 8317, "~/.proxyd/auth", ())
    assert c.remote_management.secret_key == ""
    assert (c.request_retry, c.max_retry_interval, c.routing.strategy) == (3, 30, "round-robin")


def _uncomment_examples(text: str) -> str:
    out: list[str] = []
    in_block = False
    for line in text.splitlines():
        if re.match(r"^# [a-z-]+:\s*$", line):
            in_block = True
            out.append(line[2:])
        elif in_block and line.startswith("#   "):
            out.append(line[2:])
        else:
            in_block = False
            out.append(line)
    return "\n".join(out) + "\n"


def test_shipped_config_examples_are_valid_when_uncommented() -> None:
    result = parse_config_text(_uncomment_examples(SHIPPED.read_text()))
    assert result.problems == ()
    c = result.config
    assert c is not None
    assert len(c.gemini_api_key) == len(c.codex_api_key) == len(c.vertex_api_key) == 1
    assert len(c.claude_api_key) == 2
    (compat,) = c.openai_compatibility
    assert compat.name and compat.base_url and compat.prefix and compat.headers and compat.models
    assert len(compat.api_key_entries) == 2
    assert c.oauth_model_alias and c.oauth_excluded_models and c.payload.default and c.payload.filter


def test_shipped_config_round_trips_byte_for_byte() -> None:
    text = SHIPPED.read_text()
    assert ConfigDocument.parse(text).dump() == text
