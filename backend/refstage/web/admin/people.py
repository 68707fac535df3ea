"""Referrals and Advocates: searchable lists with filters, a referral's timeline, an advocate's page
(link, QR code, share links), a program's overview, and CSV exports of what the filters show."""

from __future__ import annotations

from flask import Response, g, render_template, request

from refstage.domain.errors import InvalidInput
from refstage.services import console_views
from refstage.web.admin import bp
from refstage.web.admin.auth import ALL, requires, rt, tenant_id


def _page() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else 1


def _csv(body: str, name: str) -> Response:
    return Response(body, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"',
                                                         "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def _referral_filters() -> tuple[console_views.ReferralFilters, dict[str, list[str]]]:
    try:
        return console_views.ReferralFilters.parse(request.args), {}
    except InvalidInput as exc:
        return console_views.ReferralFilters(text=request.args.get("q", "")[:200]), exc.errors


@bp.route("/referrals")
@requires(*ALL)
def referrals():
    filters, errors = _referral_filters()
    listing = console_views.referral_list(rt(), tenant_id(), filters, _page())
    return render_template("admin/referrals.html", listing=listing, errors=errors, args=request.args,
                           statuses=[s for s in ("captured", "routed", "in_progress", "qualified", "rewarded", "duplicate",
                                                 "rejected", "disqualified")]), 400 if errors else 200


@bp.route("/referrals.csv")
@requires(*ALL)
def referrals_csv():
    filters, errors = _referral_filters()
    if errors:
        return referrals()
    return _csv(console_views.referrals_csv(rt(), tenant_id(), filters), "referrals.csv")


@bp.route("/referrals/<referral_id>")
@requires(*ALL)
def referral_detail(referral_id: str):
    return render_template("admin/referral.html", d=console_views.referral_detail(rt(), tenant_id(), referral_id))


def _advocate_args() -> dict[str, str]:
    return {"text": request.args.get("q", ""), "program_id": request.args.get("program", "")[:64],
            "source": request.args.get("source", "")[:40]}


@bp.route("/advocates")
@requires(*ALL)
def advocates():
    try:
        listing = console_views.advocate_list(rt(), tenant_id(), page=_page(), **_advocate_args())
    except InvalidInput as exc:
        listing = console_views.advocate_list(rt(), tenant_id(), text=request.args.get("q", ""))
        return render_template("admin/advocates.html", listing=listing, errors=exc.errors), 400
    return render_template("admin/advocates.html", listing=listing, errors={})


@bp.route("/advocates.csv")
@requires(*ALL)
def advocates_csv():
    try:
        body = console_views.advocates_csv(rt(), tenant_id(), **_advocate_args())
    except InvalidInput:
        return advocates()
    return _csv(body, "advocates.csv")


@bp.route("/advocates/<advocate_id>")
@requires(*ALL)
def advocate_detail(advocate_id: str):
    company = getattr(g.tenant, "display_name", None) or g.tenant.name
    return render_template("admin/advocate.html", d=console_views.advocate_detail(rt(), tenant_id(), advocate_id, company))


@bp.route("/programs/<program_id>/overview")
@requires(*ALL)
def program_overview(program_id: str):
    return render_template("admin/program_overview.html", o=console_views.program_overview(rt(), tenant_id(), program_id))
