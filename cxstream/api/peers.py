"""Which peer URLs a worker may send a query, and its peer token, to.

Peer URLs come from the consumer group's metadata, which every member of the group writes
(its ``CXSTREAM_WEB_HOST``). A worker sends its peer token with every ``/_cx/partials``
request, so it uses a URL only when it is plain ``http(s)://host:port`` and every address the
host resolves to lies in ``CXSTREAM_PEER_NETWORKS``: a member that advertises an outside
address gets neither the request nor the token.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: host, port -> the addresses it resolves to (raises OSError when it does not resolve).
Resolver = Callable[[str, int], Awaitable[list[str]]]

#: How long a verdict on a URL is kept: peers change only with the group's membership, and a
#: query should not wait for DNS each time; short enough that a moved peer is seen soon.
CACHE_S = 30.0
#: The verdicts kept at most: one per peer URL; a group advertising more is not a real group.
CACHE_MAX = 256

_cache: dict[str, tuple[float, str | None]] = {}


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def in_networks(address: str, networks: Sequence[IPNetwork]) -> bool:
    """Whether an IP address (IPv4-mapped IPv6 read as its IPv4) lies in one of `networks`."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
            address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


async def peer_refusal(url: str, networks: Sequence[IPNetwork], *,
                       resolve: Resolver = _resolve, now: Callable[[], float] = time.monotonic
                       ) -> str | None:
    """Why `url` is not a peer this worker may query (a short reason for the error), or None.

    Verdicts are cached for `CACHE_S` per URL (at most `CACHE_MAX` URLs)."""
    cached = _cache.get(url)
    if cached is not None and now() - cached[0] < CACHE_S:
        return cached[1]
    verdict = await _check(url, networks, resolve)
    if len(_cache) >= CACHE_MAX:
        _cache.clear()
    _cache[url] = (now(), verdict)
    return verdict


async def _check(url: str, networks: Sequence[IPNetwork], resolve: Resolver) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "not a URL"
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.username
            or parts.password or parts.path not in ("", "/") or parts.query or parts.fragment):
        return "not a plain http(s)://host:port URL"
    try:
        addresses = await resolve(parts.hostname, port)
    except OSError:
        return "its host does not resolve"
    if not addresses or not all(in_networks(a, networks) for a in addresses):
        return "its address is outside CXSTREAM_PEER_NETWORKS"
    return None
