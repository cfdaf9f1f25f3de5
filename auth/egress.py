"""Outgoing requests to addresses users chose (webhooks): no server-side request forgery.

A URL is allowed when its scheme is https (http too outside production), it carries no
credentials, and EVERY address its host resolves to is a public unicast address. Loopback is
the one exception, allowed only when the caller says so (outside production by default).
Private (RFC 1918, ULA), link-local (which holds the cloud metadata services, e.g.
169.254.169.254), shared (100.64/10), multicast, reserved and unspecified addresses are
refused, as are IPv4-mapped and NAT64 forms of them.

The check runs after name resolution and the caller connects to the address that was
checked (:class:`EgressGuard.resolve` returns it), so a name that resolves differently the
second time (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "EgressGuard",
    "Resolver",
    "Target",
    "UnsafeTarget",
    "forbidden_reason",
    "parse_target",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2048
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)


class UnsafeTarget(ValueError):
    """The URL may not be called; ``reason`` says why (safe to show to the URL's owner)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed, syntactically allowed URL."""

    scheme: str
    host: str
    port: int


def parse_target(url: str, *, require_https: bool) -> Target:
    """Parse ``url`` and check what can be checked without DNS; ``UnsafeTarget`` otherwise."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget(f"the URL must be 1 to {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget("not a valid URL") from exc
    scheme = parts.scheme.lower()
    allowed = ("https",) if require_https else ("https", "http")
    if scheme not in allowed:
        raise UnsafeTarget(
            "the URL must use https" if require_https else "the URL must use http or https"
        )
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("the URL may not contain credentials")
    host = parts.hostname
    if not host:
        raise UnsafeTarget("the URL has no host")
    if parts.fragment:
        raise UnsafeTarget("the URL may not contain a fragment")
    if any(ch.isspace() for ch in url):
        raise UnsafeTarget("the URL may not contain whitespace")
    return Target(scheme, host, port or (443 if scheme == "https" else 80))


def _unwrap(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:  # 2002:VVVV:VVVV::/48 carries the IPv4 it reaches
            return address.sixtofour
        if address.teredo is not None:  # (server, client): the client is what is reached
            return address.teredo[1]
    return address


def forbidden_reason(address: str, *, allow_loopback: bool) -> str | None:
    """Why connecting to ``address`` (an IP literal) is refused, or ``None`` when it is allowed."""
    try:
        ip = _unwrap(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return f"{address} is not an IP address"
    if ip.is_loopback:
        return None if allow_loopback else f"{ip} is a loopback address"
    if ip in _METADATA:
        return f"{ip} is a cloud metadata address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if ip.is_private:
        return f"{ip} is a private address"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.is_unspecified or ip.is_reserved or not ip.is_global:
        return f"{ip} is not a public address"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the operating system's resolver, off the loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class EgressGuard:
    """The egress policy: https only or not, loopback or not, and how names are resolved.

    Example:
        guard = EgressGuard(require_https=True, allow_loopback=False)
        target = guard.parse("https://hooks.example.com/in")
        address = await guard.resolve(target.host, target.port)  # connect to this address
    """

    require_https: bool
    allow_loopback: bool
    resolver: Resolver = system_resolver

    def parse(self, url: str) -> Target:
        """Parse and check ``url`` syntactically (scheme, host, no credentials)."""
        return parse_target(url, require_https=self.require_https)

    async def resolve(self, host: str, port: int) -> str:
        """Resolve ``host`` and return the address to connect to; ``UnsafeTarget`` when any
        address it resolves to is refused (a name with one bad address is refused whole)."""
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise UnsafeTarget(f"the host {host} does not resolve") from exc
        if not addresses:
            raise UnsafeTarget(f"the host {host} does not resolve")
        for address in addresses:
            reason = forbidden_reason(address, allow_loopback=self.allow_loopback)
            if reason is not None:
                prefix = "" if literal is not None else f"{host} resolves to {address}: "
                raise UnsafeTarget(f"{prefix}{reason}; webhooks may not target it")
        return addresses[0]

    async def check(self, url: str) -> Target:
        """Parse ``url`` and resolve its host; ``UnsafeTarget`` when it may not be called."""
        target = self.parse(url)
        await self.resolve(target.host, target.port)
        return target
