"""The client address behind (or without) trusted proxies."""

from __future__ import annotations

import pytest

from scoreboard.web.guards.client_address import UNKNOWN, TrustedProxies

PROXIES = TrustedProxies.parse("10.0.0.0/8, 192.0.2.1, 2001:db8::/32")


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # Not from a trusted proxy: the header is the client's own words, ignored.
        ("203.0.113.5", ["1.2.3.4"], "203.0.113.5"),
        ("203.0.113.5", [], "203.0.113.5"),
        # From a proxy: the right-most entry that is not a proxy.
        ("10.1.1.1", ["198.51.100.7"], "198.51.100.7"),
        ("10.1.1.1", ["1.2.3.4, 198.51.100.7"], "198.51.100.7"),
        ("10.1.1.1", ["1.2.3.4, 198.51.100.7, 10.2.2.2, 192.0.2.1"], "198.51.100.7"),
        # Several header lines are one list, in order.
        ("10.1.1.1", ["1.2.3.4", "198.51.100.7, 10.2.2.2"], "198.51.100.7"),
        # Only proxies in the chain: the left-most, the farthest hop known.
        ("10.1.1.1", ["10.3.3.3, 10.2.2.2"], "10.3.3.3"),
        # No header: the proxy itself.
        ("10.1.1.1", [], "10.1.1.1"),
        # Garbage stops the walk at the last trusted hop (never a key the client chose).
        ("10.1.1.1", ["198.51.100.7, not-an-ip"], "10.1.1.1"),
        ("10.1.1.1", ["not-an-ip, 10.2.2.2"], "10.2.2.2"),
        ("10.1.1.1", [""], "10.1.1.1"),
        # IPv6, and IPv4 seen through an IPv6 socket.
        ("2001:db8::1", ["2001:db9::42"], "2001:db9::42"),
        ("::ffff:10.1.1.1", ["198.51.100.7"], "198.51.100.7"),
        (None, ["198.51.100.7"], UNKNOWN),
    ],
)
def test_the_client_is_the_right_most_untrusted_hop(
    peer: str | None, forwarded: list[str], client: str
) -> None:
    assert PROXIES.client(peer, forwarded) == client


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    none = TrustedProxies.parse("")
    assert not none
    assert none.client("10.1.1.1", ["198.51.100.7"]) == "10.1.1.1"
