"""Typed application keys: one per resource the app owns."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from proxyd.config import ConfigStore
from proxyd.pipeline.runner import Pipeline
from proxyd.runtime import RuntimeHolder

CONFIG_STORE = web.AppKey("proxyd.config_store", ConfigStore)
RUNTIME = web.AppKey("proxyd.runtime", RuntimeHolder)
CLIENT_SESSION = web.AppKey("proxyd.client_session", aiohttp.ClientSession)
PIPELINE = web.AppKey("proxyd.pipeline", Pipeline)
