"""Who the client is, by address: the TCP peer, or what a trusted proxy says.

A request's peer is the client unless the peer is one of the configured
trusted proxies (``TRUSTED_PROXIES``, CIDRs). Then ``X-Forwarded-For`` is read
from the right, skipping addresses that are themselves trusted proxies; the
first one that is not is the client. Anything a client could forge (the
left-hand entries, or the whole header when the peer is not trusted) is never
believed. Only this module decides: the HTTP server is started with its own
proxy-header handling off (``python -m gateway``), so nothing rewrites the
peer before it is asked.

Limits and anonymous idempotency records count a client by
:func:`runtime.clients.client_key`: an IPv4 address, or the /64 network of an
IPv6 address (one household or phone gets a /64 and can pick any address in
it at will); the auth service counts resend cooldowns by the same rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

from runtime.clients import ip_address

__all__ = ["Network", "TrustedProxies", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (or single addresses); raises ValueError naming the bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as error:
            raise ValueError(f"not an IP network: {value!r}") from error
    return tuple(networks)


class TrustedProxies:
    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self.networks = tuple(networks)

    def _trusted(self, address: str) -> bool:
        if not self.networks:
            return False
        ip = ip_address(address)
        return ip is not None and any(ip in network for network in self.networks)

    def client_ip(self, scope: Scope) -> str:
        """The client's address as text (IPv4-mapped IPv6 written as IPv4)."""
        client = scope.get("client")
        peer = _normal(client[0]) if client else "unknown"
        if not self._trusted(peer):
            return peer
        forwarded = [
            value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name == b"x-forwarded-for"
        ]
        hops = [hop.strip() for value in forwarded for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._trusted(hop):
                return _valid(hop) or peer
        return _valid(hops[0]) or peer if hops else peer


def _normal(address: str) -> str:
    return _valid(address) or address


def _valid(address: str) -> str | None:
    ip = ip_address(address)
    return str(ip) if ip is not None else None
