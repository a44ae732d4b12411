"""The Stage protocol every pipeline step implements."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from proxyd.pipeline.exchange import Exchange


class Stage(Protocol):
    """One step of the pipeline. It reads and fills the Exchange, or raises ProxyError to answer early."""

    name: str

    async def run(self, exchange: Exchange) -> None: ...
