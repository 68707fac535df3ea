"""Review queue: rewards waiting for review and referrals held as duplicates, with their reason codes
and evidence; approve or reject one at a time or in bulk, with a comment."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from refstage.domain.errors import DomainError, InvalidInput, NotFound
from refstage.services import admin_queries, referrals, rewards
from refstage.services import programs as program_service
from refstage.web.admin import bp
from refstage.web.admin.auth import ALL, actor, requires, rt, tenant_id

REASON_TEXT = {
    "self_referral": "The friend looks like the advocate (same email, domain or CRM account).",
    "duplicate_existing_record": "The CRM already had this person before the referral.",
    "existing_customer": "The friend's account is already a customer.",
    "over_amount_threshold": "The reward is above the program's review threshold.",
    "advocate_cap_reached": "The advocate reached the reward cap for the period.",
    "milestone_regressed": "The deal moved back after qualifying.",
    "suspicious_velocity": "The advocate referred unusually many people in a short time.",
}


@bp.route("/review")
@requires(*ALL)
def review():
    program_id = request.args.get("program") or None
    items, duplicates = admin_queries.review_queue(rt(), tenant_id(), program_id=program_id)
    programs = program_service.list_programs(rt(), tenant_id())
    return render_template("admin/review.html", items=items, duplicates=duplicates, reason_text=REASON_TEXT,
                           programs=programs, program_id=program_id or "")


def _errors(exc: InvalidInput) -> str:
    return "; ".join(", ".join(map(str, v)) for v in exc.errors.values())


@bp.route("/review/rewards", methods=["POST"])
@requires(*ALL)
def review_rewards():
    decision, _, target = request.form.get("decide", "").partition(":")
    if decision not in ("approve", "reject") or not target:
        abort(400)
    approve = decision == "approve"
    try:
        if target == "selected":
            ids = request.form.getlist("reward_id")
            if not ids:
                flash("Select at least one reward.", "error")
                return redirect(url_for("admin.review"))
            comment = request.form.get("comment", "").strip() or None
            result = rewards.decide_many(rt(), tenant_id(), ids, actor(), approve=approve, comment=comment)
            verb = "approved" if approve else "rejected"
            flash(f"{len(result.done)} reward(s) {verb}." + (f" {len(result.failed)} could not be changed." if result.failed else ""),
                  "error" if result.failed and not result.done else "info")
            for rid, why in result.failed.items():
                flash(f"Reward …{rid[-8:]}: {why}", "error")  # the random tail: ids start with their creation time
        else:
            comment = (request.form.get(f"comment_{target}") or request.form.get("comment") or "").strip() or None
            if approve:
                rewards.approve_reward(rt(), tenant_id(), target, actor(), comment)
                flash("Reward approved.")
            else:
                rewards.reject_reward(rt(), tenant_id(), target, actor(), comment or "")
                flash("Reward rejected.")
    except InvalidInput as exc:
        flash(_errors(exc), "error")
    except NotFound:
        raise
    except DomainError as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.review"))


@bp.route("/review/duplicates", methods=["POST"])
@requires(*ALL)
def review_duplicates():
    decision, _, target = request.form.get("decide", "").partition(":")
    if decision not in ("accept", "reject") or not target:
        abort(400)
    accept = decision == "accept"
    ids = request.form.getlist("referral_id") if target == "selected" else [target]
    comment = (request.form.get("dup_comment") if target == "selected" else
               (request.form.get(f"dup_comment_{target}") or request.form.get("dup_comment"))) or ""
    if not ids:
        flash("Select at least one referral.", "error")
        return redirect(url_for("admin.review"))
    done, failed = 0, []
    for referral_id in dict.fromkeys(ids):
        try:
            referrals.resolve_duplicate(rt(), tenant_id(), referral_id, accept=accept, actor=actor(), comment=comment)
            done += 1
        except InvalidInput as exc:
            failed.append(_errors(exc))
        except NotFound:
            if target != "selected":
                raise
            failed.append("not found")
        except DomainError as exc:
            failed.append(str(exc))
    if done:
        flash(f"{done} duplicate(s) {'accepted: they will be attached to the existing CRM record' if accept else 'rejected'}.")
    for why in dict.fromkeys(failed):
        flash(why, "error")
    return redirect(url_for("admin.review"))
