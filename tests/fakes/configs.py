"""Config texts for tests that need a proxyd in front of a fake upstream."""

from __future__ import annotations

from typing import Any


def compat_config(upstream_base_url: str, *, api_keys: tuple[str, ...] = ("client-key",),
                  upstream_keys: tuple[str, ...] = ("sk-up-1",), extra: str = "") -> str:
    """A config with one openai-compatibility provider `fake` serving alias `my-model` → `gpt-4o`."""
    keys = "\n".join(f'  - "{k}"' for k in api_keys)
    entries = "\n".join(f'      - api-key: "{k}"' for k in upstream_keys)
    return f"""\
host: "127.0.0.1"
port: 8317
api-keys:{"" if api_keys else " []"}
{keys}
openai-compatibility:
  - name: "fake"
    base-url: "{upstream_base_url}"
    api-key-entries:
{entries}
    models:
      - name: "gpt-4o"
        alias: "my-model"
      - name: "gpt-4o-mini"
        alias: "mini"
{extra}"""


MATRIX_CLIENT_KEY = "client-key"


def matrix_config(fake_openai: Any, fake_claude: Any, fake_gemini: Any, fake_codex: Any) -> str:
    """One provider per upstream fake: aliases compat-model, claude-model, gemini-model, codex-model."""
    return f"""\
host: "127.0.0.1"
request-retry: 0  # translation tests: an upstream error reaches the client at once
api-keys:
  - "{MATRIX_CLIENT_KEY}"
openai-compatibility:
  - name: "fake"
    base-url: "{fake_openai.base_url}"
    api-key-entries:
      - api-key: "sk-compat"
    models:
      - name: "gpt-4o"
        alias: "compat-model"
claude-api-key:
  - api-key: "sk-claude"
    base-url: "{fake_claude.base_url}"
    models:
      - name: "claude-sonnet-4-5-20250929"
        alias: "claude-model"
gemini-api-key:
  - api-key: "sk-gemini"
    base-url: "{fake_gemini.base_url}"
    models:
      - name: "gemini-2.5-flash"
        alias: "gemini-model"
codex-api-key:
  - api-key: "sk-codex"
    base-url: "{fake_codex.base_url}"
    models:
      - name: "gpt-5-codex"
        alias: "codex-model"
"""
