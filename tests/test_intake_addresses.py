"""The SSRF guard: which addresses the fetcher may connect to."""

from __future__ import annotations

import ipaddress

import pytest

from newsletter.errors import ConfigError, FetchError
from newsletter.intake.addresses import (
    IPAddress,
    is_allowed,
    is_public,
    parse_networks,
    system_resolver,
)
from newsletter.intake.fetcher import FetchPolicy, fetch

BLOCKED = [
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "100.64.0.1",  # carrier-grade NAT
    "100.100.100.200",  # a cloud's metadata, in shared space
    "192.0.0.8",
    "198.18.0.1",
    "192.0.2.1",
    "203.0.113.7",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",  # a cloud's IPv6 metadata
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:db8::1",  # documentation
]
PUBLIC = ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.215.14"]


@pytest.mark.parametrize("text", BLOCKED)
def test_private_loopback_link_local_and_embedded_forms_are_blocked(text: str) -> None:
    """Every non-public address, including IPv6 forms embedding one, is refused."""
    assert not is_public(ipaddress.ip_address(text))
    assert not is_allowed(ipaddress.ip_address(text), ())


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_pass(text: str) -> None:
    """Public addresses pass."""
    assert is_public(ipaddress.ip_address(text))


@pytest.mark.parametrize(
    "spelling", ["2130706433", "0x7f.1", "127.1", "0177.0.0.1", "017700000001"]
)
def test_numeric_spellings_of_loopback_resolve_to_loopback(spelling: str) -> None:
    """Odd spellings of 127.0.0.1 come back from the resolver as the address they mean."""
    addresses = system_resolver(spelling, 80)
    assert addresses and all(not is_public(address) for address in addresses)


def test_allow_list_admits_only_its_networks() -> None:
    """``[intake] allow_networks`` admits its networks and nothing else."""
    allow = parse_networks("127.0.0.0/8, ::1")
    assert is_allowed(ipaddress.ip_address("127.0.0.5"), allow)
    assert is_allowed(ipaddress.ip_address("::1"), allow)
    assert not is_allowed(ipaddress.ip_address("10.0.0.1"), allow)
    with pytest.raises(ConfigError, match="not a network: nope"):
        parse_networks("127.0.0.0/8, nope")


def resolving_to(*answers: str):  # type: ignore[no-untyped-def]
    def resolver(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(answer) for answer in answers]

    return resolver


@pytest.mark.parametrize("answers", [("10.1.2.3",), ("93.184.215.14", "192.168.0.10"), ("::1",)])
def test_dns_answering_a_private_address_is_refused(answers: tuple[str, ...]) -> None:
    """A name whose DNS answer holds any private address is refused before connecting."""
    policy = FetchPolicy(resolver=resolving_to(*answers))
    with pytest.raises(FetchError, match="which is not a public address"):
        fetch("https://innocent.example/article", policy)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:7f00:1]/",
        "http://2130706433/",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/",
    ],
)
def test_literal_and_local_hosts_are_refused(url: str) -> None:
    """Literal private addresses and localhost are refused with the default policy."""
    with pytest.raises(FetchError, match="not a public address"):
        fetch(url, FetchPolicy())


@pytest.mark.parametrize("url", ["ftp://example.org/x", "file:///etc/passwd", "gopher://a/"])
def test_other_schemes_are_refused(url: str) -> None:
    """Only http and https are fetched."""
    with pytest.raises(FetchError, match="only http:// and https://"):
        fetch(url, FetchPolicy())
