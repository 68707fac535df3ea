"""Outbound delivery: email over SMTP and signed webhook POSTs over HTTP(S).

Called only from jobs (never inside a web request or a database transaction). Both functions report
what happened instead of raising for delivery failures, so the caller records every attempt."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

import requests

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
    status_code: int | None
    body_excerpt: str
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        """Network errors, timeouts, 408, 429 and 5xx are retried; other 4xx mean the receiver refuses."""
        if self.status_code is None:
            return True
        return self.status_code in (408, 409, 425, 429) or self.status_code >= 500


def post_json(url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> HttpResult:
    try:
        resp = requests.post(url, data=body, headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
                             timeout=timeout, allow_redirects=False)
        return HttpResult(resp.status_code, resp.text[:500], None if resp.ok else f"HTTP {resp.status_code}")
    except requests.RequestException as exc:
        return HttpResult(None, "", f"{type(exc).__name__}: {str(exc)[:300]}")
