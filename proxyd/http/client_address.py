"""The client's address (DECISIONS 9): the socket peer, or the forwarded address when the peer is a trusted proxy.

The reference trusts any ``X-Forwarded-For``; proxyd only reads it when the TCP peer is inside one of the
``trusted-proxies`` networks. The header is then walked from the right, skipping addresses of trusted proxies;
the first untrusted one is the client. Anything left of it was written by the client and is never believed.
A malformed entry in the part that is read makes the whole header untrustworthy: the peer is used instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from aiohttp import web

__all__ = ["IPAddress", "IPNetwork", "client_address", "forwarded_client", "is_local", "parse_ip", "peer_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Used when the peer is not an IP endpoint (e.g. a UNIX socket): never local, never trusted.
_UNKNOWN = ipaddress.IPv6Address("::")
_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")


def parse_ip(text: str) -> IPAddress | None:
    """Parse an address (zone id dropped); an IPv4-mapped IPv6 address becomes its IPv4 form."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def is_local(addr: IPAddress) -> bool:
    """True for 127.0.0.0/8, ``::1`` and IPv4-mapped loopback (``::ffff:127.0.0.1``)."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped in _LOOPBACK_V4
        return addr == _LOOPBACK_V6
    return addr in _LOOPBACK_V4


def _trusted(addr: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(addr.version == net.version and addr in net for net in networks)


def forwarded_client(peer: IPAddress, headers: Iterable[str], networks: Sequence[IPNetwork]) -> IPAddress:
    """The client address given the peer, the ``X-Forwarded-For`` header values and the trusted networks."""
    if not networks or not _trusted(peer, networks):
        return peer
    entries = [part for value in headers for part in value.split(",")]
    candidate = peer
    for raw in reversed(entries):
        addr = parse_ip(raw)
        if addr is None:
            return peer  # fail closed: a proxy we trust wrote something we cannot read
        if not _trusted(addr, networks):
            return addr
        candidate = addr
    return candidate  # every hop is a trusted proxy: the left-most one is the origin


def peer_address(request: web.Request) -> IPAddress:
    """The TCP peer of the connection (``::`` when it is not an IP endpoint)."""
    peername = request.transport.get_extra_info("peername") if request.transport is not None else None
    host = peername[0] if isinstance(peername, tuple | list) and peername else request.remote
    addr = parse_ip(host) if isinstance(host, str) else None
    return addr if addr is not None else _UNKNOWN


def client_address(request: web.Request) -> IPAddress:
    """The client address for this request, per the live ``trusted-proxies`` setting."""
    from proxyd.keys import CONFIG_STORE  # late: proxyd.keys imports the pipeline, which may import this module

    peer = peer_address(request)
    store = request.app.get(CONFIG_STORE)
    networks = store.current.trusted_networks() if store is not None else ()
    return forwarded_client(peer, request.headers.getall("X-Forwarded-For", ()), networks)
