"""Who is on the other end: the client address and scheme, through trusted reverse proxies.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from a peer listed in
``web_trusted_proxies``; from anyone else they are ignored (a client could write them).
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from fastapi import Request

Networks = tuple[IPv4Network | IPv6Network, ...]


def trusted_networks(entries: list[str]) -> Networks:
    return tuple(ip_network(entry, strict=False) for entry in entries)


def _trusted(address: str | None, trusted: Networks) -> bool:
    if not address or not trusted:
        return False
    try:
        peer = ip_address(address)
    except ValueError:
        return False
    return any(peer in network for network in trusted)


def client_address(request: Request, trusted: Networks) -> str:
    """The client's address: behind trusted proxies, the last untrusted ``X-Forwarded-For`` hop."""
    peer = request.client.host if request.client else "unknown"
    if not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    return peer


def is_https(request: Request, trusted: Networks) -> bool:
    """True when the browser talks https: to us, or to the trusted proxy in front of us."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else None
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return _trusted(peer, trusted) and proto == "https"
