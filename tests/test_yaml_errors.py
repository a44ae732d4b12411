"""YAML syntax errors in yaml.v3's wording (proxyd/config/yaml_errors.py), as PUT /config.yaml answers them."""

from __future__ import annotations

from typing import Any

import pytest
from test_management import MGMT, as_json, call, config_text

from proxyd.config.yaml_errors import go_yaml_syntax_message


@pytest.mark.parametrize(("text", "message"), [
    # parser errors: the context's zero-based line when not 0, else the problem's (the stream end's forced
    # new line makes a one-line document "line 1")
    ("port: [unclosed", "yaml: line 1: did not find expected ',' or ']'"),
    ("port: [unclosed\n", "yaml: line 1: did not find expected ',' or ']'"),
    ("a: {b", "yaml: line 1: did not find expected ',' or '}'"),
    ("a:\n  - b\n c: d\n", "yaml: line 2: did not find expected key"),
    # scanner errors: one more, and no line at all on the first line
    ("x: 1\ny: 2\nkey: @bad\n", "yaml: line 3: found character that cannot start any token"),
    ("a: b: c\n", "yaml: mapping values are not allowed in this context"),
    ("a: 'x", "yaml: found unexpected end of stream"),
])
def test_go_yaml_wording(text: str, message: str) -> None:
    assert go_yaml_syntax_message(text) == message


@pytest.mark.parametrize("text", ["port: 1\n", "a: *undefined\n", ""])
def test_no_wording_for_valid_yaml_or_other_errors(text: str) -> None:
    assert go_yaml_syntax_message(text) is None


async def test_put_config_yaml_answers_the_references_message(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config_text())
    status, _, body = await call(server, "PUT", f"{MGMT}/config.yaml", data="port: [unclosed")
    assert status == 400
    assert as_json(body) == {"error": "invalid_yaml", "message": "yaml: line 1: did not find expected ',' or ']'"}
    # an undefined alias keeps proxyd's own wording
    status, _, body = await call(server, "PUT", f"{MGMT}/config.yaml", data="a: *undefined\n")
    assert status == 400 and as_json(body)["message"].startswith("YAML syntax error")
