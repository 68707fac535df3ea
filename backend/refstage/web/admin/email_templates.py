"""Advocate email templates per program (admins): the events a program emails about, each with its
subject and body; edit, preview with sample values, reset to the shipped default.

Everything goes through `services.notifications` (`email_templates`, `set_email_template`,
`preview_email_template`, `reset_email_template`). Templates are `string.Template` text with
`$placeholders`, substituted without evaluating anything, so an edited template cannot run code; a bad
`$` or an unknown placeholder is an `InvalidInput` shown next to its field, never a 500. Emails are plain
text: the preview and the outbox show them escaped."""

from __future__ import annotations

import string

from flask import abort, flash, redirect, render_template, request, url_for

from refstage.domain.errors import InvalidInput
from refstage.services import notifications as n
from refstage.services import programs as program_service
from refstage.web.admin import bp
from refstage.web.admin.auth import ADMIN, actor, requires, rt, tenant_id

LABELS = {
    n.REFERRAL_CAPTURED: "Referral captured",
    n.REFERRAL_QUALIFIED: "Referral qualified",
    n.REWARD_ISSUED: "Reward issued",
    n.STATUS_LINK: "Status page link",
}
WHEN = {
    n.REFERRAL_CAPTURED: "to the advocate when a friend they referred is captured (not when blocked or held as a duplicate)",
    n.REFERRAL_QUALIFIED: "to the advocate when the referral reaches the program's milestone",
    n.REWARD_ISSUED: "to the advocate when their reward is marked as paid",
    n.STATUS_LINK: "to the advocate who asks for a link to their status page",
}
_ADVOCATE = ("advocate_name", "program_name", "referral_link", "status_link", "status_link_hours")
_FRIEND = ("friend_name", "friend_company", "friend_company_suffix")
#: The placeholders that have a value in each email (others are left as typed).
EVENT_VARIABLES = {
    n.REFERRAL_CAPTURED: _ADVOCATE + _FRIEND,
    n.REFERRAL_QUALIFIED: _ADVOCATE + _FRIEND,
    n.REWARD_ISSUED: _ADVOCATE + _FRIEND + ("reward_amount", "payout_reference_line"),
    n.STATUS_LINK: _ADVOCATE,
}


def _event(event: str) -> str:
    if event not in n.EMAIL_EVENTS:
        abort(404)
    return event


def _program(program_id: str):
    return program_service.get_program(rt(), tenant_id(), program_id)  # NotFound (404) across tenants


def _unavailable(event: str, subject: str, body: str) -> list[str]:
    used: set[str] = set()
    for text in (subject, body):
        tpl = string.Template(text or "")
        if tpl.is_valid():
            used |= set(tpl.get_identifiers())
    return sorted((used & set(n.TEMPLATE_VARIABLES)) - set(EVENT_VARIABLES[event]))


@bp.route("/programs/<program_id>/emails")
@requires(*ADMIN)
def program_emails(program_id: str):
    program = _program(program_id)
    templates = n.email_templates(rt(), tenant_id(), program_id)
    return render_template("admin/email_templates.html", program=program, templates=templates, labels=LABELS, when=WHEN)


def _render(program, event: str, subject: str, body: str, *, is_default: bool, errors=None, preview=None, status=200):
    return render_template("admin/email_template_form.html", program=program, event=event, label=LABELS[event], when=WHEN[event],
                           subject=subject, body=body, is_default=is_default, errors=errors or {}, preview=preview,
                           variables=[(k, n.TEMPLATE_VARIABLES[k]) for k in EVENT_VARIABLES[event]],
                           unavailable=_unavailable(event, subject, body)), status


@bp.route("/programs/<program_id>/emails/<event>", methods=["GET"])
@requires(*ADMIN)
def program_email(program_id: str, event: str):
    _event(event)
    program = _program(program_id)
    current = next(t for t in n.email_templates(rt(), tenant_id(), program_id) if t["event"] == event)
    return _render(program, event, current["subject"], current["body"], is_default=current["is_default"])


@bp.route("/programs/<program_id>/emails/<event>", methods=["POST"])
@requires(*ADMIN)
def program_email_save(program_id: str, event: str):
    _event(event)
    program = _program(program_id)
    action = request.form.get("action", "save")
    if action == "reset":
        n.reset_email_template(rt(), tenant_id(), program_id, event, actor())
        flash(f"“{LABELS[event]}” is back to the default text.")
        return redirect(url_for("admin.program_email", program_id=program_id, event=event))
    subject = request.form.get("subject", "")
    body = request.form.get("body", "").replace("\r\n", "\n")
    current = next(t for t in n.email_templates(rt(), tenant_id(), program_id) if t["event"] == event)
    try:
        if action == "preview":
            preview = n.preview_email_template(rt(), tenant_id(), program_id, event, subject, body)
            return _render(program, event, subject, body, is_default=current["is_default"], preview=preview)
        if action != "save":
            abort(400)
        n.set_email_template(rt(), tenant_id(), program_id, event, subject, body, actor())
    except InvalidInput as exc:
        return _render(program, event, subject, body, is_default=current["is_default"], errors=exc.errors, status=400)
    flash(f"“{LABELS[event]}” saved for {program.name}.")
    return redirect(url_for("admin.program_email", program_id=program_id, event=event))
