"""Which network addresses the fetcher may connect to (the SSRF guard).

A server that fetches URLs people give it must never be turned against its own network: every
address a host name resolves to must be public, at every redirect. ``ipaddress.is_global``
misses addresses that *embed* an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4,
Teredo), so those are unwrapped and checked as the IPv4 address they reach.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Union

from newsletter.errors import ConfigError

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]  # noqa: UP007
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]  # noqa: UP007
Resolver = Callable[[str, int], list[IPAddress]]

_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# Shared, benchmark, documentation and protocol ranges: not global, whatever the Python.
_ALSO_BLOCKED = (
    ipaddress.IPv4Network("100.64.0.0/10"),
    ipaddress.IPv4Network("198.18.0.0/15"),
    ipaddress.IPv4Network("0.0.0.0/8"),
    ipaddress.IPv4Network("192.0.0.0/24"),
    ipaddress.IPv4Network("192.0.2.0/24"),
    ipaddress.IPv4Network("198.51.100.0/24"),
    ipaddress.IPv4Network("203.0.113.0/24"),
    ipaddress.IPv4Network("240.0.0.0/4"),
)


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, through the system's resolver.

    Numeric oddities (``2130706433``, ``0x7f.1``, ``127.1``) come back as the address they mean,
    so they are checked like any other. Raises ``OSError`` when the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        address = ipaddress.ip_address(text)
        if address not in addresses:
            addresses.append(address)
    return addresses


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when it embeds one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is a public unicast address (not loopback, private, link-local,
    cloud metadata, multicast, reserved or unspecified, nor an IPv6 form embedding one)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.teredo is not None:
            return False  # a tunnel to an address we cannot see
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
    if any(address in network for network in _ALSO_BLOCKED if network.version == address.version):
        return False
    return bool(
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_link_local
        and not address.is_loopback
        and not address.is_unspecified
    )


def is_allowed(address: IPAddress, allow: Sequence[IPNetwork]) -> bool:
    """Public, or inside one of the networks the operator allowed (``[intake] allow_networks``)."""
    if any(address.version == net.version and address in net for net in allow):
        return True
    return is_public(address)


def parse_networks(text: str, where: str = "[intake] allow_networks") -> tuple[IPNetwork, ...]:
    """``"127.0.0.0/8, ::1"`` as networks; raises ``ConfigError`` naming a bad entry."""
    networks: list[IPNetwork] = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError("not a network: %(value)s", where, value=part) from None
    return tuple(networks)
