"""Clients by network address: the one rule for counting a client.

Rate limits, anonymous idempotency records and the login-code resend
cooldown all count a client by :func:`client_key`: an IPv4 address, or the
/64 network of an IPv6 address (one household or phone gets a /64 and can
pick any address in it at will). IPv4-mapped IPv6 addresses count as IPv4.
The gateway decides who the client is (``TRUSTED_PROXIES``); the services
only apply the same rule to the address it passes on.
"""

from __future__ import annotations

import functools
import ipaddress

__all__ = ["IPV6_PREFIX", "client_key", "ip_address"]

#: IPv6 clients are counted per network of this many leading bits.
IPV6_PREFIX = 64

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


#: No address is written in more characters (IPv6 with a zone id: about 62):
#: longer text is not parsed, nor kept in the caches below, so a client
#: sending long junk in a header cannot fill them with it.
MAX_ADDRESS_TEXT = 64


def ip_address(text: str) -> Address | None:
    """``text`` as an address (an IPv4-mapped IPv6 one as IPv4), or None."""
    return None if len(text) > MAX_ADDRESS_TEXT else _parsed(text)


def client_key(ip: str) -> str:
    """What a client is counted by: the IPv4 address, or the IPv6 /64; text
    that is no address is returned as it is. Cached, as the parsing is: every
    request asks, and the answer for an address never changes."""
    return ip if len(ip) > MAX_ADDRESS_TEXT else _client_key(ip)


@functools.lru_cache(maxsize=65_536)
def _parsed(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=65_536)
def _client_key(ip: str) -> str:
    address = _parsed(ip)
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address) if address is not None else ip
