"""proxyd's own management routes: every credential's live state, and lifting cooldowns.

`GET  /v0/management/credentials` → `{"credentials": [...]}` (ok / cooling / disabled, cooldowns per model with
the reason and the upstream's last error, in-flight and success/failure counts; never a secret).
`POST /v0/management/credentials/reset` with `{"id": "...", "model": "..."?}` (no id = every credential)
lifts cooldowns — the reference's later `reset-quota`. A body over 64 KiB → `413 {"error": "request body too large"}`.
`{"auth_index": "..."}` does it for one credential named by its stable index, as the recorded reference build:
`{"status": "ok", "auth_index", "models": [...]}` (the models that had a state, else every model it serves).
"""

from __future__ import annotations

import json

from aiohttp import web

from proxyd.credentials.model import auth_index_of
from proxyd.http.body import read_limited
from proxyd.keys import RUNTIME

MAX_BODY_BYTES = 64 * 1024  # an id and a model name


async def list_credentials(request: web.Request) -> web.StreamResponse:
    manager = request.app[RUNTIME].current.manager
    return web.json_response({"credentials": manager.snapshot()})


async def reset_cooldown(request: web.Request) -> web.StreamResponse:
    manager = request.app[RUNTIME].current.manager
    raw = await read_limited(request, MAX_BODY_BYTES)
    if raw is None:
        return web.json_response({"error": "request body too large"}, status=413)
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return web.json_response({"error": "invalid body"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "invalid body"}, status=400)
    credential_id, model = body.get("id"), body.get("model")
    if (credential_id is not None and not isinstance(credential_id, str)) or (
            model is not None and not isinstance(model, str)):
        return web.json_response({"error": "invalid body"}, status=400)
    ids = [credential_id] if credential_id else [c["id"] for c in manager.snapshot()]
    for one in ids:
        if not manager.clear_cooldown(one, model):
            return web.json_response({"error": "credential not found"}, status=404)
    return web.json_response({"status": "ok", "reset": ids})


async def reset_quota(request: web.Request) -> web.StreamResponse:
    """Lift every cooldown of the credential whose `auth_index` the body names."""
    runtime = request.app[RUNTIME].current
    raw = await read_limited(request, MAX_BODY_BYTES)
    if raw is None:
        return web.json_response({"error": "request body too large"}, status=413)
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("auth_index", ""), str):
        return web.json_response({"error": "invalid request body"}, status=400)
    wanted = str(body.get("auth_index", "")).strip()
    if not wanted:
        return web.json_response({"error": "auth_index is required"}, status=400)
    credential = next((c for c in runtime.credentials if auth_index_of(c) == wanted), None)
    if credential is None:
        return web.json_response({"error": "auth not found"}, status=404)
    manager = runtime.manager
    models = sorted(manager.model_states(credential.id))
    if not models:
        models = sorted({m.exposed for m in credential.models})
    manager.clear_cooldown(credential.id)
    return web.json_response({"status": "ok", "auth_index": wanted, "models": models})
