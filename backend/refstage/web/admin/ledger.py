"""Rewards ledger: filter by status and program, CSV export (formula-injection safe), mark as paid,
and — when the webhooks service offers it — send a reward to the payout system."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for

from refstage.domain.errors import DomainError, InvalidInput
from refstage.domain.rewards import RewardStatus
from refstage.services import admin_queries, rewards
from refstage.services import programs as program_service
from refstage.web.admin import bp
from refstage.web.admin.auth import ADMIN, ALL, actor, back_or, requires, rt, tenant_id


def payout_sender():
    """`services.webhooks.send_payout(rt, tenant_id, reward_id, actor)` if the webhooks service has it."""
    try:
        from refstage.services import webhooks
    except ImportError:
        return None
    return getattr(webhooks, "send_payout", None)


def _filters():
    status = request.args.get("status") or None
    if status not in {s.value for s in RewardStatus}:
        status = None
    return status, request.args.get("program") or None


@bp.route("/ledger")
@requires(*ALL)
def ledger():
    status, program_id = _filters()
    rows = admin_queries.ledger(rt(), tenant_id(), status=status, program_id=program_id)
    programs = program_service.list_programs(rt(), tenant_id())
    can_send = payout_sender() is not None
    sent = {}
    if can_send:
        from refstage.services import webhooks

        sent = webhooks.payout_requests(rt(), tenant_id(), [row.reward.id for row in rows])
    return render_template("admin/ledger.html", rows=rows, programs=programs, status=status or "", program_id=program_id or "",
                           statuses=[s.value for s in RewardStatus], can_send=can_send, sent=sent)


@bp.route("/ledger.csv")
@requires(*ALL)
def ledger_csv():
    status, program_id = _filters()
    rows = admin_queries.ledger(rt(), tenant_id(), status=status, program_id=program_id, limit=100_000)
    body = admin_queries.ledger_csv(rows)
    name = "rewards" + (f"-{status}" if status else "") + ".csv"
    return Response(body, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"',
                                                         "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


@bp.route("/ledger/<reward_id>/paid", methods=["POST"])
@requires(*ADMIN)
def ledger_mark_paid(reward_id: str):
    """Needs the payout reference (what the finance system calls the payment) and a confirmation."""
    reference = " ".join(request.form.get("payout_reference", "").split())[:200]
    back = back_or(url_for("admin.ledger"))
    if not reference:
        flash("Enter the payout reference (the payment's id in your payout or accounting system) to mark a reward as paid.",
              "error")
        return redirect(back)
    if request.form.get("confirm") != "yes":
        row = admin_queries.ledger_row(rt(), tenant_id(), reward_id)  # 404 for another tenant's reward
        return render_template("admin/ledger_paid_confirm.html", row=row, reference=reference, back=back)
    try:
        rewards.issue_reward(rt(), tenant_id(), reward_id, actor(), reference or None)
        flash(f"Reward marked as paid (reference {reference}).")
    except InvalidInput as exc:
        flash("; ".join(", ".join(map(str, v)) for v in exc.errors.values()), "error")
    except DomainError as exc:
        if exc.__class__.__name__ == "NotFound":
            raise
        flash(f"Cannot mark as paid: {exc}", "error")
    return redirect(back_or(url_for("admin.ledger")))


@bp.route("/ledger/<reward_id>/send", methods=["POST"])
@requires(*ADMIN)
def ledger_send(reward_id: str):
    send = payout_sender()
    if send is None:
        flash("No payout webhook is configured in this build.", "error")
        return redirect(url_for("admin.ledger"))
    from refstage.services.webhooks import PayoutNotAllowed

    try:
        result = send(rt(), tenant_id(), reward_id, actor())  # NotFound (404) for another tenant's reward
    except PayoutNotAllowed as exc:
        flash(f"Not sent to the payout system: {exc}.", "error")
        return redirect(back_or(url_for("admin.ledger")))
    if result.sent:
        flash(f"Sent to the payout system ({len(result.deliveries)} endpoint(s)); the webhooks page shows the answer. "
              "Mark the reward as paid when the payout system confirms.")
    else:
        flash(f"Already sent to the payout system on {result.requested_at:%Y-%m-%d %H:%M} UTC; nothing was sent again. "
              "To send it once more, use Redeliver in the webhooks delivery log.", "error")
    return redirect(back_or(url_for("admin.ledger")))
