"""Running the app's pipeline with a body of the route's choosing and a writer stage of its own.

The WebSocket transport and `/v1internal:*` feed the pipeline a body that is not the HTTP request body (a
merged WebSocket turn, the Gemini CLI envelope's inner request) and write the answer somewhere else than a
plain HTTP response (WebSocket frames, CLI-enveloped SSE). Both are done here without touching the stages:
the Exchange is built with its body already parsed, and the app pipeline's stage list is copied with some
stages swapped (usually `stream-rewrite`) (observers are shared, so request records still reach usage statistics).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxyd.keys import PIPELINE
from proxyd.pipeline.exchange import Exchange
from proxyd.pipeline.runner import Pipeline
from proxyd.pipeline.stage import Stage
from proxyd.protocols.base import WireProtocol
from proxyd.routes.proxy import new_exchange


def exchange_for(request: web.Request, protocol: WireProtocol, body: dict[str, Any], *,
                 path_model: str | None = None, stream: bool | None = None, count: bool = False,
                 request_id: str | None = None) -> Exchange:
    """An Exchange over `request` whose JSON body is `body` (the HTTP body is never read)."""
    return new_exchange(request, protocol, path_model=path_model, stream=stream, count=count, body=body,
                        request_id=request_id)


def pipeline_with(app: web.Application, *replacements: Stage) -> Pipeline:
    """The app's pipeline with the stages of the same names replaced by `replacements`; observers shared."""
    base = app[PIPELINE]
    if not replacements:
        return base
    by_name = {stage.name: stage for stage in replacements}
    pipeline = Pipeline([by_name.get(stage.name, stage) for stage in base.stages])
    pipeline.observers = base.observers
    return pipeline
