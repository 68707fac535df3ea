"""Domain events for people and systems outside: emails to advocates (and admins), outbound webhooks.

`dispatch` runs in the `notify` job. Each email is first written to the `email_outbox` table under a
dedupe key derived from (event, entity, recipient), so a repeated job sends nothing new; then it is
delivered over SMTP when REFSTAGE_SMTP_URL is set, else kept in the outbox (status `stored`) for the
admin console and the demo to show. Webhook events fan out through `services.webhooks`.

Templates: shipped defaults per event, overridden per program in `email_templates`. They use
`$placeholders` (string.Template, safe_substitute): an admin-edited template cannot run code."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import string
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from refstage.domain.audit import Actor, AuditEntry
from refstage.domain.codes import referral_link
from refstage.domain.errors import InvalidInput, NotFound
from refstage.domain.referrals import ReferralStatus, normalise_email
from refstage.domain.rewards import Recipient
from refstage.services.ports import UnitOfWork
from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)

REFERRAL_CAPTURED = "referral.captured"
REFERRAL_QUALIFIED = "referral.qualified"
REWARD_APPROVED = "reward.approved"
REWARD_ISSUED = "reward.issued"
RECONNECT_REQUIRED = "connection.reconnect_required"
STATUS_LINK = "advocate.status_link"

#: Advocate emails with per-program templates.
EMAIL_EVENTS = (REFERRAL_CAPTURED, REFERRAL_QUALIFIED, REWARD_ISSUED, STATUS_LINK)
MAX_EMAIL_ATTEMPTS = 6
STATUS_LINK_MAX_AGE = dt.timedelta(hours=72)
#: One status-link email per advocate per window, however often the form is sent.
STATUS_LINK_WINDOW = dt.timedelta(minutes=10)

DEFAULT_TEMPLATES: dict[str, tuple[str, str]] = {
    REFERRAL_CAPTURED: (
        "$friend_name is in: thanks for your referral",
        "Hi $advocate_name,\n\n$friend_name$friend_company_suffix just accepted your referral to $company_name. "
        "We'll let you know when it qualifies.\n\nYour referral link: $referral_link\n"
        "See all your referrals and rewards: $status_link\n\n— The $company_name team\n",
    ),
    REFERRAL_QUALIFIED: (
        "Your referral of $friend_name qualified",
        "Hi $advocate_name,\n\nGood news: your referral of $friend_name$friend_company_suffix has qualified in "
        "$program_name. Any reward it earns will follow once it is approved.\n\n"
        "See all your referrals and rewards: $status_link\n\n— The $company_name team\n",
    ),
    REWARD_ISSUED: (
        "Your reward of $reward_amount is on its way",
        "Hi $advocate_name,\n\nWe have issued your reward of $reward_amount for referring $friend_name to "
        "$program_name.$payout_reference_line\n\nThank you!\nSee all your referrals and rewards: $status_link\n\n"
        "— The $company_name team\n",
    ),
    STATUS_LINK: (
        "Your $program_name referral status",
        "Hi $advocate_name,\n\nHere is your private link to see your referrals and rewards in $program_name. "
        "It works for $status_link_hours hours:\n\n$status_link\n\nYour referral link to share: $referral_link\n\n"
        "If you did not ask for this, you can ignore this email.\n",
    ),
}
_ADMIN_TEMPLATE = (
    "Action needed: reconnect $connection_name",
    "Hello,\n\nThe CRM connection \"$connection_name\" for $tenant_name needs to be connected again: "
    "$connection_message\n\nSign in to Refstage and choose Connect on the connections page.\n",
)
TEMPLATE_VARIABLES: dict[str, str] = {
    "advocate_name": "the advocate's name",
    "program_name": "the program's name",
    "company_name": "your company's name as advocates know it (Company settings)",
    "referral_link": "the advocate's link to share",
    "status_link": "a private, expiring link to the advocate's status page",
    "status_link_hours": "how long a status link works, in hours",
    "friend_name": "the referred friend's name",
    "friend_company": "the friend's company (may be empty)",
    "friend_company_suffix": "' (Company)' when the friend gave a company, else empty",
    "reward_amount": "the reward, e.g. 100.00 USD",
    "payout_reference_line": "a line with the payout reference when there is one, else empty",
}
_MAX_SUBJECT, _MAX_BODY = 300, 10_000


# --- magic links to the advocate status page ---------------------------------------------------------
class StatusLinkInvalid(Exception):
    """The link was altered or was never ours."""


class StatusLinkExpired(Exception):
    """The link was ours but is too old."""


def _status_serializer(rt: Runtime) -> URLSafeTimedSerializer:
    clock = rt.now

    class ClockSigner(TimestampSigner):
        # Time comes from the runtime's clock, like everything else (tests move it by hand).
        def get_timestamp(self) -> int:
            return int(clock().timestamp())

    return URLSafeTimedSerializer(rt.settings.secret_key, salt="refstage.advocate-status", signer=ClockSigner)


def status_token(rt: Runtime, tenant_id: str, advocate_id: str) -> str:
    return _status_serializer(rt).dumps({"t": tenant_id, "a": advocate_id})


def read_status_token(rt: Runtime, token: str) -> tuple[str, str]:
    """(tenant_id, advocate_id), or StatusLinkExpired / StatusLinkInvalid."""
    try:
        data = _status_serializer(rt).loads(token, max_age=int(STATUS_LINK_MAX_AGE.total_seconds()))
    except SignatureExpired as exc:
        raise StatusLinkExpired() from exc
    except (BadSignature, ValueError, TypeError) as exc:
        raise StatusLinkInvalid() from exc
    if not isinstance(data, dict) or not isinstance(data.get("t"), str) or not isinstance(data.get("a"), str):
        raise StatusLinkInvalid()
    return data["t"], data["a"]


def status_link(rt: Runtime, tenant_id: str, advocate_id: str) -> str:
    return f"{rt.settings.base_url.rstrip('/')}/me/{status_token(rt, tenant_id, advocate_id)}"


def advocate_status(rt: Runtime, tenant_id: str, advocate_id: str) -> dict[str, Any]:
    """What the status page shows: the advocate, their program, referrals (newest first) and rewards."""
    with rt.uow(tenant_id) as uow:
        advocate = uow.advocates.get(advocate_id)
        program = uow.programs.get(advocate.program_id)
        referrals = uow.referrals.list(advocate_id=advocate.id, limit=500, offset=0)
        rewards_by_referral = uow.rewards.for_referrals([r.id for r in referrals])
    rewards = [w for r in referrals for w in rewards_by_referral.get(r.id, [])
               if w.recipient == Recipient.ADVOCATE]
    return {"advocate": advocate, "program": program, "referrals": sorted(referrals, key=lambda r: r.captured_at, reverse=True),
            "rewards": rewards, "rewards_by_referral": rewards_by_referral,
            "link": referral_link(rt.settings.base_url, advocate.code)}


def request_status_links(rt: Runtime, email: str) -> int:
    """Email every active enrolment of this address a fresh status link. Returns how many were queued;
    callers show the same answer whatever it is, so the form does not reveal who is enrolled."""
    try:
        address = normalise_email(email)
    except InvalidInput:
        return 0
    with rt.uow() as uow:
        rows = uow.directory.active_advocates_by_email(address, limit=20)
    return sum(1 for tenant_id, advocate_id in rows if send_status_link(rt, tenant_id, advocate_id))


def send_status_link(rt: Runtime, tenant_id: str, advocate_id: str) -> bool:
    """Queue an email with a fresh status link for one advocate; at most one per advocate per window."""
    window = int(rt.now().timestamp() // STATUS_LINK_WINDOW.total_seconds())
    with rt.uow(tenant_id) as uow:
        advocate = uow.advocates.get(advocate_id)
        if not advocate.email:
            return False
        program = uow.programs.get(advocate.program_id)
        subject, body = _render(uow, program.id, STATUS_LINK, _advocate_vars(rt, program, advocate))
        outbox_id = _store(uow, rt, _Draft(f"{STATUS_LINK}:{advocate_id}:{window}", STATUS_LINK, advocate_id,
                                           program.id, advocate.email, subject, body))
        uow.commit()
    if outbox_id:
        rt.jobs.enqueue("deliver_email", tenant_id=tenant_id, outbox_id=outbox_id)
    return outbox_id is not None


# --- templates ------------------------------------------------------------------------------------------
def _validate_template(subject: str, body: str) -> None:
    errors: dict[str, list[str]] = {}
    for key, value, limit in (("subject", subject, _MAX_SUBJECT), ("body", body, _MAX_BODY)):
        if not isinstance(value, str) or not value.strip():
            errors[key] = ["required"]
            continue
        if len(value) > limit:
            errors[key] = [f"at most {limit} characters"]
            continue
        tpl = string.Template(value)
        if not tpl.is_valid():
            errors[key] = ["a $ must start a placeholder such as $advocate_name; write $$ for a dollar sign"]
            continue
        unknown = sorted(set(tpl.get_identifiers()) - set(TEMPLATE_VARIABLES))
        if unknown:
            errors[key] = [f"unknown placeholder(s): {', '.join('$' + u for u in unknown)}"]
    if isinstance(subject, str) and ("\n" in subject or "\r" in subject):
        errors.setdefault("subject", []).append("one line only")
    if errors:
        raise InvalidInput(errors)


def email_templates(rt: Runtime, tenant_id: str, program_id: str) -> list[dict[str, Any]]:
    """The effective template of each advocate email for a program, with `is_default`."""
    with rt.uow(tenant_id) as uow:
        uow.programs.get(program_id)  # 404 across tenants
        rows = uow.email_templates.for_program(program_id)
    out = []
    for event in EMAIL_EVENTS:
        row = rows.get(event)
        subject, body = (row[0], row[1]) if row else DEFAULT_TEMPLATES[event]
        out.append({"event": event, "subject": subject, "body": body, "is_default": row is None,
                    "updated_at": row[2] if row else None})
    return out


def set_email_template(rt: Runtime, tenant_id: str, program_id: str, event: str, subject: str, body: str,
                       actor: Actor) -> dict[str, Any]:
    """Override one email for one program (the admin console's editor calls this)."""
    if event not in EMAIL_EVENTS:
        raise InvalidInput({"event": f"one of {', '.join(EMAIL_EVENTS)}"})
    _validate_template(subject, body)
    now = rt.now()
    with rt.uow(tenant_id) as uow:
        uow.programs.get(program_id)
        stored = uow.email_templates.get(program_id, event)
        before = {"subject": stored[0], "body": stored[1]} if stored else None
        uow.email_templates.put(rt.new_id(), program_id, event, subject.strip(), body, now)
        uow.audit.append([AuditEntry(tenant_id, "program", program_id, "email_template_updated", actor, now, before,
                                     {"event": event, "subject": subject.strip(), "body": body})])
        uow.commit()
    return {"event": event, "subject": subject.strip(), "body": body, "is_default": False, "updated_at": now}


def reset_email_template(rt: Runtime, tenant_id: str, program_id: str, event: str, actor: Actor) -> None:
    """Back to the shipped default."""
    with rt.uow(tenant_id) as uow:
        uow.programs.get(program_id)
        stored = uow.email_templates.get(program_id, event)
        if stored is None:
            return
        uow.email_templates.remove(program_id, event)
        uow.audit.append([AuditEntry(tenant_id, "program", program_id, "email_template_reset", actor, rt.now(),
                                     {"event": event, "subject": stored[0]}, None)])
        uow.commit()


def preview_email_template(rt: Runtime, tenant_id: str, program_id: str, event: str, subject: str | None = None,
                           body: str | None = None) -> dict[str, str]:
    """Render a template (the stored one, or the given draft) with sample values."""
    with rt.uow(tenant_id) as uow:
        program = uow.programs.get(program_id)
        if subject is None or body is None:
            stored = _template(uow, program_id, event)
            subject, body = subject if subject is not None else stored[0], body if body is not None else stored[1]
    _validate_template(subject, body)
    from refstage.services.tenants import identity

    sample = {"advocate_name": "Sam Advocate", "program_name": program.name,
              "company_name": identity(rt, program.tenant_id).company_name, "referral_link": f"{rt.settings.base_url}/r/ABCDEFGHJ",
              "status_link": f"{rt.settings.base_url}/me/…", "status_link_hours": str(_hours()),
              "friend_name": "Alex Friend", "friend_company": "Example Ltd", "friend_company_suffix": " (Example Ltd)",
              "reward_amount": "100.00 USD", "payout_reference_line": "\nPayout reference: PAY-123"}
    return {"subject": string.Template(subject).safe_substitute(sample), "body": string.Template(body).safe_substitute(sample)}


def _template(uow: UnitOfWork, program_id: str | None, event: str) -> tuple[str, str]:
    if program_id:
        stored = uow.email_templates.get(program_id, event)
        if stored:
            return stored
    return DEFAULT_TEMPLATES[event]


def _render(uow: UnitOfWork, program_id: str | None, event: str, values: dict[str, str]) -> tuple[str, str]:
    subject, body = _template(uow, program_id, event)
    subject = " ".join(string.Template(subject).safe_substitute(values).split())[:_MAX_SUBJECT]
    return subject, string.Template(body).safe_substitute(values)


def _hours() -> int:
    return int(STATUS_LINK_MAX_AGE.total_seconds() // 3600)


def _advocate_vars(rt: Runtime, program, advocate) -> dict[str, str]:
    from refstage.services.tenants import identity

    return {"advocate_name": advocate.name, "program_name": program.name,
            "company_name": identity(rt, program.tenant_id).company_name,
            "referral_link": referral_link(rt.settings.base_url, advocate.code),
            "status_link": status_link(rt, advocate.tenant_id, advocate.id), "status_link_hours": str(_hours())}


def _referral_vars(referral) -> dict[str, str]:
    return {"friend_name": referral.friend_name, "friend_company": referral.friend_company or "",
            "friend_company_suffix": f" ({referral.friend_company})" if referral.friend_company else ""}


# --- the outbox -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Draft:
    dedupe: str
    event: str
    entity_id: str
    program_id: str | None
    to: str
    subject: str
    body: str


def _dedupe_key(raw: str) -> str:
    event = raw.split(":", 1)[0]
    return f"{event[:60]}:{hashlib.sha256(raw.encode()).hexdigest()}"


def _store(uow: UnitOfWork, rt: Runtime, draft: _Draft) -> str | None:
    """Insert the email unless its dedupe key exists. Returns the id of a row that still needs
    delivering (new, or an earlier attempt that is waiting for a retry), else None."""
    return uow.outbox.add_once(rt.new_id(), _dedupe_key(draft.dedupe), event=draft.event, entity_id=draft.entity_id,
                               program_id=draft.program_id, to=draft.to, subject=draft.subject, body=draft.body,
                               now=rt.now())


def _compose(rt: Runtime, uow: UnitOfWork, event: str, entity_id: str) -> list[_Draft]:
    if event in (REFERRAL_CAPTURED, REFERRAL_QUALIFIED):
        referral = uow.referrals.get(entity_id)
        if event == REFERRAL_CAPTURED and referral.status in (ReferralStatus.REJECTED, ReferralStatus.DUPLICATE):
            return []  # blocked or held for review: nothing to celebrate yet
        advocate = uow.advocates.get(referral.advocate_id)
        if not advocate.email:
            return []
        program = uow.programs.get(referral.program_id)
        values = {**_advocate_vars(rt, program, advocate), **_referral_vars(referral)}
        subject, body = _render(uow, program.id, event, values)
        return [_Draft(f"{event}:{entity_id}:{advocate.email}", event, entity_id, program.id, advocate.email, subject, body)]
    if event == REWARD_ISSUED:
        reward = uow.rewards.get(entity_id)
        if reward.recipient != Recipient.ADVOCATE or not reward.advocate_id:
            return []
        advocate = uow.advocates.get(reward.advocate_id)
        if not advocate.email:
            return []
        referral = uow.referrals.get(reward.referral_id)
        program = uow.programs.get(reward.program_id)
        values = {**_advocate_vars(rt, program, advocate), **_referral_vars(referral), "reward_amount": str(reward.amount),
                  "payout_reference_line": f"\nPayout reference: {reward.payout_reference}" if reward.payout_reference else ""}
        subject, body = _render(uow, program.id, event, values)
        return [_Draft(f"{event}:{entity_id}:{advocate.email}", event, entity_id, program.id, advocate.email, subject, body)]
    if event == RECONNECT_REQUIRED:
        conn = uow.connections.get(entity_id)
        tenant = uow.tenants.get(uow.tenant_id)
        values = {"connection_name": conn.name, "tenant_name": tenant.name,
                  "connection_message": conn.status_message or "its stored credentials were refused."}
        subject = string.Template(_ADMIN_TEMPLATE[0]).safe_substitute(values)
        body = string.Template(_ADMIN_TEMPLATE[1]).safe_substitute(values)
        day = rt.now().date().isoformat()  # at most one reminder per admin per connection per day
        return [_Draft(f"{event}:{entity_id}:{u.email}:{day}", event, entity_id, None, u.email, subject, body)
                for u in uow.users.list() if u.role.value == "admin"]
    return []


def dispatch(rt: Runtime, tenant_id: str, event: str, entity_id: str) -> list[str]:
    """Handle one domain event: webhooks out, emails stored and delivered. Safe to repeat.
    Returns the outbox ids this call delivered (or tried to)."""
    log.info("event %s for %s in tenant %s", event, entity_id, tenant_id, extra={"event": event, "entity_id": entity_id})
    from refstage.services import webhooks

    if event in webhooks.WEBHOOK_EVENTS:
        webhooks.fan_out(rt, tenant_id, event, entity_id)
    with rt.uow(tenant_id) as uow:
        try:
            drafts = _compose(rt, uow, event, entity_id)
        except NotFound:
            log.warning("event %s: %s no longer exists; nothing sent", event, entity_id)
            return []
        ids = [i for i in (_store(uow, rt, d) for d in drafts) if i]
        uow.commit()
    for outbox_id in ids:
        if deliver_email(rt, tenant_id, outbox_id) == "retrying":
            rt.jobs.enqueue("deliver_email", tenant_id=tenant_id, outbox_id=outbox_id)
    return ids


def deliver_email(rt: Runtime, tenant_id: str, outbox_id: str) -> str:
    """Send one stored email (or keep it in the outbox when no SMTP server is configured).
    Claimed with a conditional UPDATE, so two workers never both send it. Returns the new status."""
    with rt.uow(tenant_id) as uow:
        claimed = uow.outbox.claim(outbox_id)
        uow.commit()
        email = uow.outbox.get(outbox_id)
        if not claimed:
            return email["status"]
        to, subject, body, attempts = email["to"], email["subject"], email["body"], email["attempts"]
    smtp_url = rt.settings.smtp_url
    if smtp_url:
        result = rt.outbound.send_email(smtp_url, rt.settings.mail_from, to, subject, body)
        if result.ok:
            status, error = "sent", None
        else:
            status = "retrying" if result.transient and attempts < MAX_EMAIL_ATTEMPTS else "failed"
            error = result.error
            log.warning("email %s to %s: %s (%s)", outbox_id, to, error, status)
        transport = "smtp"
    else:
        status, error, transport = "stored", None, "outbox"
    with rt.uow(tenant_id) as uow:
        uow.outbox.finish(outbox_id, status, error, transport, rt.now() if status in ("sent", "stored") else None)
        uow.commit()
    return status


def emails_due_for_retry(rt: Runtime, older_than: dt.timedelta = dt.timedelta(minutes=5), limit: int = 500) -> list[tuple[str, str]]:
    """(tenant_id, outbox_id) of emails whose delivery job was lost or is waiting: the sweep re-queues them."""
    cutoff = rt.now() - older_than
    with rt.uow() as uow:
        return uow.directory.emails_due(cutoff, limit)


def list_outbox(rt: Runtime, tenant_id: str, *, event: str | None = None, status: str | None = None,
                limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """The emails of a tenant, newest first (the admin console's and the demo's outbox view)."""
    with rt.uow(tenant_id) as uow:
        return uow.outbox.list(event=event, status=status, limit=limit, offset=offset)


def get_outbox_email(rt: Runtime, tenant_id: str, outbox_id: str) -> dict[str, Any]:
    with rt.uow(tenant_id) as uow:
        return uow.outbox.get(outbox_id)
