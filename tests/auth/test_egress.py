"""The egress policy for webhook URLs: refused addresses, schemes and names (no network)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth.egress import EgressGuard, UnsafeTarget, forbidden_reason, parse_target

FORBIDDEN = [
    ("169.254.169.254", "metadata"),
    ("169.254.170.2", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("100.100.100.200", "metadata"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("::ffff:10.0.0.1", "private"),
    ("64:ff9b::a00:1", "private"),
    ("100.64.0.1", "not a public"),
    ("0.0.0.0", "private"),
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "private"),
    ("::", "private"),
    # IPv4 inside 6to4 (2002::/16) and Teredo (2001::/32): the v4 address is what is reached.
    ("2002:a9fe:a9fe::1", "metadata"),
    ("2002:0a00:0001::1", "private"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),
]


@pytest.mark.parametrize(("address", "kind"), FORBIDDEN)
def test_internal_addresses_are_refused_even_with_loopback_allowed(address: str, kind: str) -> None:
    reason = forbidden_reason(address, allow_loopback=True)
    assert reason is not None and kind in reason, reason


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_only_when_allowed(address: str) -> None:
    assert forbidden_reason(address, allow_loopback=True) is None
    assert "loopback" in (forbidden_reason(address, allow_loopback=False) or "")


@given(st.ip_addresses())
def test_only_global_addresses_and_allowed_loopback_pass(address: object) -> None:
    import ipaddress

    ip = ipaddress.ip_address(str(address))
    allowed = forbidden_reason(str(ip), allow_loopback=False) is None
    if allowed:
        assert ip.is_global and not ip.is_private and not ip.is_link_local
        assert not ip.is_loopback and not ip.is_multicast


@pytest.mark.parametrize(
    ("url", "https", "fragment"),
    [
        ("http://hooks.example.com/x", True, "https"),
        ("ftp://hooks.example.com/x", False, "http or https"),
        ("https://user:pw@hooks.example.com/x", True, "credentials"),
        ("https:///x", True, "no host"),
        ("https://hooks.example.com/x#frag", True, "fragment"),
        ("https://hooks.example.com:99999/x", True, "not a valid URL"),
        ("", True, "1 to 2048"),
        ("https://h.example.com/" + "a" * 3000, True, "1 to 2048"),
    ],
)
def test_urls_refused_before_any_lookup(url: str, https: bool, fragment: str) -> None:
    with pytest.raises(UnsafeTarget, match=fragment):
        parse_target(url, require_https=https)


def _resolver(answers: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError("no such name")
        return answers[host]

    return resolve


async def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    guard = EgressGuard(
        require_https=True,
        allow_loopback=False,
        resolver=_resolver(
            {
                "good.example": ["93.184.215.14"],
                "mixed.example": ["93.184.215.14", "10.1.2.3"],
                "local.example": ["127.0.0.1"],
            }
        ),
    )
    assert await guard.resolve("good.example", 443) == "93.184.215.14"
    with pytest.raises(UnsafeTarget, match=r"mixed.example resolves to 10.1.2.3: .*private"):
        await guard.resolve("mixed.example", 443)
    with pytest.raises(UnsafeTarget, match="loopback"):
        await guard.check("https://local.example/hook")
    with pytest.raises(UnsafeTarget, match="does not resolve"):
        await guard.check("https://missing.example/hook")


async def test_localhost_through_the_system_resolver_is_refused_in_production() -> None:
    guard = EgressGuard(require_https=True, allow_loopback=False)
    with pytest.raises(UnsafeTarget, match=r"localhost resolves to .*loopback"):
        await guard.check("https://localhost:8443/hook")
    with pytest.raises(UnsafeTarget, match="must use https"):
        await guard.check("http://127.0.0.1:8443/hook")


async def test_ip_literals_skip_the_resolver() -> None:
    async def never(host: str, port: int) -> list[str]:
        raise AssertionError("an IP literal must not be resolved")

    guard = EgressGuard(require_https=False, allow_loopback=True, resolver=never)
    assert await guard.resolve("127.0.0.1", 80) == "127.0.0.1"
    assert await guard.resolve("[::1]", 80) == "::1"
    with pytest.raises(UnsafeTarget, match="metadata"):
        await guard.check("http://169.254.169.254/latest/meta-data/")
