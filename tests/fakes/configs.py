"""Config texts for tests that need a proxyd in front of a fake upstream."""

from __future__ import annotations


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
