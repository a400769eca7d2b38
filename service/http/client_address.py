"""The address a request comes from, for its rate-limit bucket (§10.5, §13).

The TCP peer, unless the peer is one of the trusted reverse proxies (KAZOO's
`crossbar.reverse_proxies`, default `["127.0.0.1"]`): then `X-Forwarded-For` names the
client. Each proxy appends the address it was reached from, so the header is read from
the right, skipping trusted proxies, and the first other address is the client.

KAZOO uses the whole header as it comes, which lets a client behind the proxy choose
its own bucket by sending an `X-Forwarded-For` of its own; reading from the right does
not. An entry that is no IP address ends the walk at the last trusted hop.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """IP addresses or CIDR blocks; raises ValueError naming a bad one."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def client_address(
    peer: str | None, forwarded_for: str | None, proxies: tuple[Network, ...]
) -> str:
    if peer is None:
        return "no_ip"
    if not forwarded_for or not _trusted(peer, proxies):
        return peer
    hop = peer
    for entry in reversed(forwarded_for.split(",")):
        candidate = entry.strip()
        if not _is_address(candidate):
            return hop
        if not _trusted(candidate, proxies):
            return candidate
        hop = candidate
    return hop


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)
