"""Outbound delivery: email over SMTP and signed webhook POSTs over HTTP(S).

Called only from jobs (never inside a web request or a database transaction). Both functions report
what happened instead of raising for delivery failures, so the caller records every attempt."""

from __future__ import annotations

import ipaddress
import os
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

import urllib3

from refstage.services.ports import TargetRefused  # raised here, caught by the services

USER_AGENT = "Refstage-Webhooks/1.0"


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    security: str  # plain | starttls | ssl
    username: str | None
    password: str | None
    timeout: float = 10.0


def parse_smtp_url(url: str) -> SmtpTarget:
    """smtp://host:25 (plain), smtp+starttls://user:pass@host:587 or smtp://...?starttls=1 (STARTTLS),
    smtps://user:pass@host:465 (implicit TLS)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = parse_qs(parts.query)
    if scheme == "smtps":
        security, default_port = "ssl", 465
    elif scheme in ("smtp+starttls", "submission"):
        security, default_port = "starttls", 587
    elif scheme == "smtp":
        wants_tls = query.get("starttls", ["0"])[0].lower() in ("1", "true", "yes")
        security, default_port = ("starttls", 587) if wants_tls else ("plain", 25)
    else:
        raise ValueError(f"REFSTAGE_SMTP_URL: unsupported scheme {parts.scheme!r} (smtp, smtp+starttls, smtps)")
    if not parts.hostname:
        raise ValueError("REFSTAGE_SMTP_URL needs a host")
    timeout = float(query.get("timeout", ["10"])[0])
    return SmtpTarget(parts.hostname, parts.port or default_port, security,
                      unquote(parts.username) if parts.username else None,
                      unquote(parts.password) if parts.password else None, timeout)


@dataclass(frozen=True)
class EmailResult:
    ok: bool
    error: str | None = None
    transient: bool = True


def build_message(mail_from: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="refstage.local")
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body)
    return msg


def send_email(smtp_url: str, mail_from: str, to: str, subject: str, body: str) -> EmailResult:
    target = parse_smtp_url(smtp_url)
    msg = build_message(mail_from, to, subject, body)
    try:
        context = ssl.create_default_context()
        if target.security == "ssl":
            server: smtplib.SMTP = smtplib.SMTP_SSL(target.host, target.port, timeout=target.timeout, context=context)
        else:
            server = smtplib.SMTP(target.host, target.port, timeout=target.timeout)
        with server:
            server.ehlo()
            if target.security == "starttls":
                server.starttls(context=context)
                server.ehlo()
            if target.username:
                server.login(target.username, target.password or "")
            server.send_message(msg)
        return EmailResult(True)
    except smtplib.SMTPRecipientsRefused as exc:
        return EmailResult(False, f"recipient refused: {exc.recipients}", transient=False)
    except smtplib.SMTPResponseException as exc:
        # 5xx answers are permanent; 4xx are worth retrying.
        return EmailResult(False, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", transient=exc.smtp_code < 500)
    except (smtplib.SMTPException, OSError) as exc:
        return EmailResult(False, f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class HttpResult:
    """What one POST did: the status, or a short sanitised reason. The receiver's body is never kept
    (it could be an internal service's answer, shown to whoever reads the delivery log)."""

    status_code: int | None
    error: str | None
    retryable_refusal: bool = True

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        """Network errors, timeouts, 408, 429 and 5xx are retried; other 4xx mean the receiver refuses;
        a target we refused to contact is not retried."""
        if self.status_code is None:
            return self.retryable_refusal
        return self.status_code in (408, 409, 425, 429) or self.status_code >= 500


# --- webhook targets: resolve, check every address, connect to the one checked -----------------------------
#: Cloud instance-metadata and platform addresses (AWS/GCP/Azure/OpenStack, ECS, Alibaba, Azure wireserver, AWS IPv6).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "169.254.169.253", "100.100.100.200", "168.63.129.16", "fd00:ec2::254", "fd00:ec2::23"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv4Address | ipaddress.IPv6Address):
    """The IPv4 address an IPv6 one carries (::ffff:a.b.c.d, NAT64 64:ff9b::a.b.c.d, 6to4), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour:
            return address.sixtofour
    return address


def address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_private: bool = False) -> str | None:
    """Why this address is not a public internet host (None when it is). With `allow_private` (development
    only), loopback, private and link-local addresses pass; metadata, multicast and unspecified never do."""
    inner = _embedded_ipv4(address)
    candidates = (inner,) if inner == address else (inner, address)  # the embedded IPv4 names the real target
    for candidate in candidates:
        if candidate in METADATA_ADDRESSES:
            return "a cloud metadata address"
        if candidate.is_unspecified:
            return "an unspecified address"
        if candidate.is_multicast:
            return "a multicast address"
    for candidate in candidates:
        for kind, hit in (("a loopback", candidate.is_loopback), ("a link-local", candidate.is_link_local),
                          ("a private", candidate.is_private), ("a reserved", candidate.is_reserved),
                          ("a non-public", not candidate.is_global)):
            if hit:
                return None if allow_private and kind != "a reserved" else f"{kind} address"
    return None


@dataclass(frozen=True)
class ResolvedTarget:
    scheme: str
    host: str
    port: int
    path: str
    netloc: str
    address: str
    basic_auth: tuple[str, str] | None


def _split(url: str):
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("an http(s) URL with a host")
    return parts, port or (443 if parts.scheme == "https" else 80)


def resolve_target(url: str, *, allow_private: bool = False, resolver=None) -> ResolvedTarget:
    """Resolve the URL's host and check every address it names; the first is the one to connect to
    (so a second lookup cannot swap in another address: DNS rebinding)."""
    parts, port = _split(url)
    host = parts.hostname.rstrip(".")
    try:
        infos = (resolver or socket.getaddrinfo)(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise TargetRefused("the host name does not resolve", permanent=False) from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        problem = address_problem(address, allow_private=allow_private)
        if problem:
            raise TargetRefused(f"refused: the host is {problem}")
        addresses.append(str(address))
    if not addresses:
        raise TargetRefused("the host name does not resolve", permanent=False)
    auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username is not None else None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return ResolvedTarget(parts.scheme, host, port, path, parts.netloc.rpartition("@")[2], addresses[0], auth)


def check_webhook_url(url: str, *, allow_private: bool = False, resolver=None) -> None:
    """At creation: refuse a URL whose host is (or resolves to) an address we never send to. A name that
    does not resolve yet is accepted; every send resolves and checks again."""
    try:
        resolve_target(url, allow_private=allow_private, resolver=resolver)
    except TargetRefused as exc:
        if exc.permanent:
            raise


def sanitise_reason(text: str, limit: int = 200) -> str:
    """One short printable line: no control characters, no receiver-supplied page."""
    clean = "".join(ch if ch.isprintable() else " " for ch in text or "")
    return " ".join(clean.split())[:limit]


def _ca_bundle() -> str:
    import certifi

    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or certifi.where()


def _failure(exc: Exception) -> str:
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # a subclass of ConnectTimeoutError in urllib3 2
        return "connection failed"
    if isinstance(exc, (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "TLS handshake or certificate check failed"
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return "connection failed"
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return "connection dropped"
    return type(exc).__name__


def post_json(url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0, *, allow_private: bool = False,
              resolver=None) -> HttpResult:
    """POST to a checked address of the URL's host (TLS still verifies the host name); redirects are not
    followed; the answer's body is not read."""
    try:
        target = resolve_target(url, allow_private=allow_private, resolver=resolver)
    except TargetRefused as exc:
        return HttpResult(None, exc.reason, retryable_refusal=not exc.permanent)
    send_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers, "Host": target.netloc}
    if target.basic_auth:
        send_headers.update(urllib3.util.make_headers(basic_auth=":".join(target.basic_auth)))
    limits = urllib3.Timeout(connect=timeout, read=timeout)
    if target.scheme == "https":
        is_ip_literal = target.host.strip("[]") == target.address
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            target.address, target.port, timeout=limits, retries=False, cert_reqs="CERT_REQUIRED", ca_certs=_ca_bundle(),
            server_hostname=None if is_ip_literal else target.host, assert_hostname=target.host.strip("[]"))
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, timeout=limits, retries=False)
    try:
        with pool:
            resp = pool.urlopen("POST", target.path, body=body, headers=send_headers, redirect=False, retries=False,
                                preload_content=False, assert_same_host=False)
            status = resp.status
            resp.release_conn()
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return HttpResult(None, _failure(exc))
    if 300 <= status < 400:
        return HttpResult(status, f"HTTP {status} (redirects are not followed)")
    return HttpResult(status, None if 200 <= status < 300 else f"HTTP {status}")
