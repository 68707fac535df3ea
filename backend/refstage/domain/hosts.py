"""Which hosts Refstage may send a CRM secret or token to: a pure allow-list (no DNS, no network).

A pattern is a host name (`login.salesforce.com`) or `*.` and a suffix (`*.my.salesforce.com`); the
`*` stands for exactly one DNS label, so `*.my.salesforce.com` does not cover
`x.sandbox.my.salesforce.com` (listed separately) nor `evil.com.my.salesforce.com`'s parent tricks.
Only https on the default port is allowed, except for loopback hosts when a development setting says
the CRM emulators run there. See docs/decisions/2026-12-02-outbound-host-allow-list.md."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Salesforce's own login and My Domain hosts (production, sandbox, and the partitioned domains of
#: Developer Edition, scratch, demo, patch orgs and Trailhead playgrounds).
SALESFORCE_HOSTS: tuple[str, ...] = (
    "login.salesforce.com",
    "test.salesforce.com",
    "*.my.salesforce.com",
    "*.sandbox.my.salesforce.com",
    "*.develop.my.salesforce.com",
    "*.scratch.my.salesforce.com",
    "*.demo.my.salesforce.com",
    "*.patch.my.salesforce.com",
    "*.trailblaze.my.salesforce.com",
)
#: Pipedrive: the OAuth server (oauth.pipedrive.com) and every company's api_domain (acme.pipedrive.com).
PIPEDRIVE_HOSTS: tuple[str, ...] = ("*.pipedrive.com",)

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class HostNotAllowed(ValueError):
    """The URL points at a host outside the allow-list (or is not a plain https origin)."""


def _valid_pattern(pattern: str) -> str:
    clean = pattern.strip().lower().rstrip(".")
    labels = clean[2:].split(".") if clean.startswith("*.") else clean.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"not a host name or *.suffix pattern: {pattern!r}")
    return clean


def parse_host_patterns(text: str | None) -> tuple[str, ...]:
    """A comma- or space-separated setting (`acme.example.com, *.login.example.org`) → checked patterns."""
    return tuple(_valid_pattern(p) for p in re.split(r"[,\s]+", text or "") if p.strip())


def host_matches(host: str, pattern: str) -> bool:
    host = host.lower().rstrip(".")
    if pattern.startswith("*."):
        suffix = pattern[1:]  # ".my.salesforce.com"
        label = host[: -len(suffix)] if host.endswith(suffix) else ""
        return bool(label) and "." not in label and bool(_LABEL.match(label))
    return host == pattern


def is_loopback_host(host: str) -> bool:
    host = host.lower().strip("[]").rstrip(".")
    if host in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


@dataclass(frozen=True)
class HostPolicy:
    """An allow-list for one CRM: its official patterns, those an administrator configured, and
    (development and demo only) loopback hosts on any port, where the emulators listen."""

    name: str
    patterns: tuple[str, ...]
    allow_loopback: bool = False

    def origin(self, url: str) -> str:
        """`https://host[:port]` for an allowed URL (any path is dropped); HostNotAllowed otherwise."""
        try:
            parts = urlsplit((url or "").strip())
            host, port = parts.hostname, parts.port
        except ValueError:
            raise HostNotAllowed(f"{url!r} is not a valid URL") from None
        if parts.scheme != "https" or not host or parts.username is not None or parts.password is not None:
            raise HostNotAllowed(f"{self.name} hosts are https:// URLs without user information")
        if self.allow_loopback and is_loopback_host(host):
            return f"https://{parts.netloc.rpartition('@')[2].lower()}"
        if port not in (None, 443):
            raise HostNotAllowed(f"{host}:{port} is not a {self.name} host (only the standard https port)")
        if not any(host_matches(host, pattern) for pattern in self.patterns):
            raise HostNotAllowed(f"{host} is not a {self.name} host this installation trusts")
        return f"https://{host.lower().rstrip('.')}"

    def allows(self, url: str) -> bool:
        try:
            self.origin(url)
        except HostNotAllowed:
            return False
        return True

    def same_origin(self, url: str, origin: str) -> str:
        """The URL, when it is on exactly `origin` (an allowed origin); HostNotAllowed otherwise."""
        if self.origin(url) != origin:
            raise HostNotAllowed(f"{url!r} is not on {origin}")
        return url
