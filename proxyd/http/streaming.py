"""A streaming response whose headers leave in the same packet as its first body bytes.

aiohttp's `StreamResponse.prepare` sends the status line and headers at once, in a packet of their own: the
client wakes up for headers it cannot use yet, and the first event follows in a second send. Like Go's
`net/http` (the reference), a `HeldHeadersResponse` keeps the serialised headers until the first `write`
(or `write_eof`), which sends both with one system call. `send_headers()` pushes them out alone when there is
nothing to write yet (a first upstream event that yields no client bytes).
"""

from __future__ import annotations

from aiohttp import web


class HeldHeadersResponse(web.StreamResponse):
    """`web.StreamResponse` sending its headers with the first body bytes instead of at `prepare`."""

    _send_headers_immediately = False

    async def send_headers(self) -> None:
        """Send the held headers now, without body bytes (nothing happens once they are out)."""
        await self.write(b"")
