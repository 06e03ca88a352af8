"""The client's address: what rate limits, socket caps and the audit log key on.

It is the socket's peer, unless that peer is one of ``SCOREBOARD_TRUSTED_PROXIES``. Only then is
``X-Forwarded-For`` read, from the right: each trusted hop appended the address it saw, so the
right-most entry that is *not* a trusted proxy is the client as the outermost trusted proxy saw
it. Everything to its left was written by the client and may be anything. A peer that is not
trusted can send any ``X-Forwarded-For`` it likes; it changes nothing.

An entry that is not an IP address stops the walk at the last trusted hop: a proxy of ours
writes addresses, so garbage there means a misconfigured chain, and keying limits on text the
client may choose would let it pick a fresh key per request.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from starlette.requests import HTTPConnection

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

UNKNOWN = "unknown"
_CACHED = 4096


class TrustedProxies:
    """The networks from ``SCOREBOARD_TRUSTED_PROXIES`` (comma-separated IPs or CIDRs)."""

    __slots__ = ("_networks", "_resolved")

    def __init__(self, networks: Iterable[IPNetwork] = ()) -> None:
        self._networks = tuple(networks)
        # Parsing addresses costs several microseconds a request; the same few (peer, header)
        # pairs come again and again. Bounded: a client varying its header only evicts.
        self._resolved = functools.lru_cache(maxsize=_CACHED)(self._resolve)

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        items = filter(None, (part.strip() for part in text.split(",")))
        return cls(ipaddress.ip_network(item, strict=False) for item in items)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: IPAddress) -> bool:
        return any(address in network for network in self._networks)

    def client(self, peer: str | None, forwarded_for: Iterable[str]) -> str:
        """The client's address given the socket ``peer`` and every ``X-Forwarded-For``
        header value, in the order received."""
        if peer is None:
            return UNKNOWN
        return self._resolved(peer, tuple(forwarded_for))

    def _resolve(self, peer: str, forwarded_for: tuple[str, ...]) -> str:
        current = _parse(peer)
        if current is None or not self._networks or not self.trusts(current):
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops):
            address = _parse(hop)
            if address is None:
                break
            current = address
            if not self.trusts(address):
                break
        return str(current)


def _parse(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket: one client, one key.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(connection: HTTPConnection) -> str:
    """The address of the client of this request or socket (see the module docstring)."""
    peer = connection.client.host if connection.client else None
    trusted: TrustedProxies | None = getattr(connection.app.state, "trusted_proxies", None)
    if not trusted:
        return peer or UNKNOWN
    return trusted.client(peer, connection.headers.getlist("x-forwarded-for"))
