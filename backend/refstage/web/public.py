"""Public pages: the referral landing page and friend form (/r/<code>), self-enrolment
(/join/<tenant>/<program>), and the advocate status page reached by a signed, expiring magic link.

Server-rendered, no JavaScript needed (a small script only adds copy and share buttons). Every form
has a signed anti-forgery token, shared rate limits (per IP and per code or email), a honeypot field
and a minimum fill time signed into the form. The landing page is rendered once per code and cached
with its advocate and program for a few seconds (services.landing); only the nonce and the two form
tokens are filled in per view. A valid referral post is stored in the intake with one write and
answered at once; the worker makes it a referral (services.intake)."""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from typing import Any

from flask import Blueprint, current_app, g, make_response, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from refstage.domain.audit import Actor, ActorKind
from refstage.domain.codes import normalise_code, referral_link
from refstage.domain.errors import InvalidInput, NotFound
from refstage.domain.programs import ProgramStatus
from refstage.domain.referrals import AdvocateSource, clean_text, normalise_email
from refstage.services import enrolment, intake, landing as landing_pages, notifications, protection, referrals
from refstage.services import programs as program_service
from refstage.services.runtime import Runtime
from refstage.web.csrf import check_signed, keyed_mac, signed_token

log = logging.getLogger(__name__)
bp = Blueprint("public", __name__)

HONEYPOT = "website"
TIMING = "form_ts"
FORM_MAX_AGE = 24 * 3600
DEFAULT_MIN_FILL_SECONDS = 3
#: (limit, window seconds) per scope; override with app.config["REFSTAGE_RATE_LIMITS"].
DEFAULT_LIMITS: dict[str, tuple[int, int]] = {
    "view_ip": (300, 60),
    "referral_ip": (10, 600),
    "referral_code": (30, 3600),
    "join_ip": (10, 600),
    "status_ip": (5, 600),
    "status_email": (3, 3600),
}
STATUS_LABELS = {
    "captured": "Received", "routed": "With the sales team", "in_progress": "In progress", "qualified": "Qualified",
    "rewarded": "Rewarded", "duplicate": "Already known to us", "rejected": "Not accepted", "disqualified": "No longer qualifying",
    "pending_hold": "Waiting for the holding period", "pending_review": "Being reviewed", "approved": "Approved",
    "issued": "Issued", "cancelled": "Cancelled",
}
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")
DEFAULT_BRAND = "#0b5cab"


def rt() -> Runtime:
    return current_app.extensions["refstage"]


@bp.record_once
def _setup(state) -> None:
    app = state.app
    ttl = app.config.get("REFSTAGE_PAGE_CACHE_SECONDS", landing_pages.DEFAULT_TTL_SECONDS)
    app.extensions["refstage_landing_cache"] = landing_pages.LandingCache(app.extensions["refstage"], ttl)
    app.extensions["refstage_intake_writer"] = intake.IntakeWriter(app.extensions["refstage"])
    app.extensions["refstage_view_counter"] = protection.LocalCounter()


def referral_page(code: str) -> landing_pages.ReferralPage | None:
    return current_app.extensions["refstage_landing_cache"].get(code)


# --- page chrome: CSP with a nonce, brand colour, friendly errors ----------------------------------------
@bp.before_request
def _nonce() -> None:
    g.csp_nonce = secrets.token_urlsafe(16)


@bp.after_request
def _headers(resp):
    # The security headers (CSP with this request's nonce, framing, referrer) are added app-wide (web/headers.py).
    if request.method == "POST" or request.path.startswith("/me/"):
        resp.headers["Cache-Control"] = "no-store"
    return resp


def _luminance(hex_color: str) -> float:
    h = hex_color.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    channels = []
    for i in (0, 2, 4):
        c = int(h[i:i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def brand(color: str | None) -> dict[str, str]:
    """A safe CSS colour (anything else falls back) and a text colour that reads on it (WCAG contrast)."""
    color = color if isinstance(color, str) and _HEX.match(color) else DEFAULT_BRAND
    lum = _luminance(color)
    on_white = (1.05) / (lum + 0.05)
    on_black = (lum + 0.05) / 0.05
    text = "#ffffff" if on_white >= on_black else "#111111"
    # Links and focus rings on the white page use the brand colour only when it has enough contrast.
    accent = color if on_white >= 4.5 else "#0b5cab"
    return {"color": color, "text": text, "accent": accent}


def _company(program: Any) -> str:
    from refstage.web.identity import company_of

    company = company_of(program)
    return company.company_name if company else program.name


def page(template: str, status: int = 200, headers: dict[str, str] | None = None, **ctx: Any):
    ctx.setdefault("brand", brand(None))
    resp = make_response(render_template(template, labels=STATUS_LABELS, **ctx), status)
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def unavailable(kind: str, status: int, **ctx: Any):
    """Unknown code (404), paused program (410), expired or invalid link: a page, never a trace."""
    return page("public/unavailable.html", status, kind=kind, **ctx)


@bp.errorhandler(Exception)
def _errors(exc: Exception):
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        if code == 400:
            return page("public/error.html", 400, title="This form has expired",
                        message=exc.description or "Reload the page and try again.")
        if code == 404:
            return unavailable("unknown", 404)
        return page("public/error.html", code, title=exc.name, message=exc.description or exc.name)
    if isinstance(exc, NotFound):
        return unavailable("unknown", 404)
    log.exception("unhandled error on %s %s", request.method, request.path)
    return page("public/error.html", 500, title="Something went wrong",
                message="Something went wrong on our side. It has been logged; please try again in a moment.")


# --- protection helpers -------------------------------------------------------------------------------------
def _limit(scope: str) -> protection.Limit:
    configured = current_app.config.get("REFSTAGE_RATE_LIMITS", {})
    limit, window = configured.get(scope, DEFAULT_LIMITS[scope])
    return protection.Limit(scope, int(limit), int(window))


def client_ip() -> str:
    return request.remote_addr or "unknown"


LOCAL_SCOPES = {"view_ip"}  # page views: counted in-process (no database write per view)


def rate_limited(*pairs: tuple[str, str | None]):
    """None when allowed, else a 429 page with Retry-After."""
    decision = None
    for scope, subject in pairs:
        if scope in LOCAL_SCOPES:
            counter = current_app.extensions["refstage_view_counter"]
            decision = decision or protection.check_local(rt(), counter, _limit(scope), subject)
    shared = [(_limit(scope), subject) for scope, subject in pairs if subject and scope not in LOCAL_SCOPES]
    decision = decision or (protection.check(rt(), shared) if shared else None)
    return None if decision is None else too_many(decision)


def too_many(decision: protection.Decision):
    minutes = max(1, round(decision.retry_after / 60))
    return page("public/error.html", 429, headers={"Retry-After": str(decision.retry_after)},
                title="Too many attempts", message=f"Please wait about {minutes} minute{'s' if minutes != 1 else ''} and try again.")


def _timing_mac(form: str, key: str, shown: str) -> str:
    return keyed_mac("refstage.form-timing", form, key, shown)


def form_token(form: str, key: str) -> str:
    """Signed 'this form was shown at …' stamp; a post sooner than the minimum fill time is a bot."""
    shown = f"{rt().now().timestamp():.3f}"
    return f"{shown}.{_timing_mac(form, key, shown)}"


def bot_check(form: str, key: str) -> str | None:
    """None for a plausible person, else the reason: honeypot, bad_timestamp, too_fast or expired."""
    if request.form.get(HONEYPOT, ""):
        return "honeypot"
    shown, _, mac = request.form.get(TIMING, "").rpartition(".")
    try:
        at = float(shown)
    except ValueError:
        return "bad_timestamp"
    if not hmac.compare_digest(mac, _timing_mac(form, key, shown)):
        return "bad_timestamp"
    age = rt().now().timestamp() - at
    if age > FORM_MAX_AGE:
        return "expired"
    minimum = float(current_app.config.get("REFSTAGE_MIN_FILL_SECONDS", DEFAULT_MIN_FILL_SECONDS))
    if age < minimum:
        return "too_fast"
    return None


def field_errors(errors: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in (errors or {}).items():
        out[str(key)] = [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    return out


TIMING_MESSAGE = "That was quicker than we expected. Please check your details and send the form again."
EXPIRED_MESSAGE = "This form was open for a long time. Please check your details and send it again."


# --- /r/<code>: landing page, friend form, thank-you --------------------------------------------------------
# Stand-ins for the per-view parts of the cached landing page; random per process, so page text cannot forge them.
_MARK = secrets.token_hex(8)
NONCE_MARK, CSRF_MARK, TIMING_MARK = f"n{_MARK}n", f"c{_MARK}c", f"t{_MARK}t"


def _lookup(code: str):
    """(page, None) for an open code, else (None, an error page): unknown (404), paused (410)."""
    found = referral_page(code)
    if found is None:
        return None, unavailable("unknown", 404)
    if not found.open:
        program = found.program
        return None, unavailable("paused", 410, program=program, brand=brand(program.landing.brand_color))
    return found, None


def _landing(found: landing_pages.ReferralPage, values: dict[str, Any] | None = None,
             errors: dict[str, list[str]] | None = None, notice: str | None = None, status: int = 200):
    program = found.program
    return page("public/landing.html", status, advocate=found.advocate, program=program, landing=program.landing,
                brand=brand(program.landing.brand_color), code=found.code, values=values or {}, errors=errors or {},
                notice=notice, form_ts=form_token("referral", found.code), csrf=signed_token(f"referral:{found.code}"))


_MARKS = re.compile(f"({NONCE_MARK}|{CSRF_MARK}|{TIMING_MARK})")


def _fresh_landing(found: landing_pages.ReferralPage):
    """The empty form, rendered once per cached page; the nonce and the form tokens are filled in per view."""
    key = ("landing", request.script_root)  # links in the page depend on where the app is mounted
    parts = found.memo.get(key)
    if parts is None:
        nonce, g.csp_nonce = g.csp_nonce, NONCE_MARK
        try:
            program = found.program
            html = render_template("public/landing.html", labels=STATUS_LABELS, advocate=found.advocate, program=program,
                                   landing=program.landing, brand=brand(program.landing.brand_color), code=found.code,
                                   values={}, errors={}, notice=None, form_ts=TIMING_MARK, csrf=CSRF_MARK)
        finally:
            g.csp_nonce = nonce
        parts = found.memo[key] = _MARKS.split(html)  # text, mark, text, mark, ...
    fill = {NONCE_MARK: g.csp_nonce, CSRF_MARK: signed_token(f"referral:{found.code}"),
            TIMING_MARK: form_token("referral", found.code)}
    html = "".join(fill.get(part, part) if i % 2 else part for i, part in enumerate(parts))
    return current_app.response_class(html, mimetype="text/html")


@bp.get("/r/<code>")
def landing(code: str):
    limited = rate_limited(("view_ip", client_ip()))
    if limited:
        return limited
    found, error = _lookup(code)
    return error or _fresh_landing(found)


@bp.post("/r/<code>")
def submit_referral(code: str):
    code = normalise_code(code)
    token = check_signed(f"referral:{code}")
    ip = client_ip()
    limits = (("referral_ip", ip), ("referral_code", code))
    found, error = _lookup(code)
    if error:
        return rate_limited(*limits) or error
    advocate, program = found.advocate, found.program
    form = request.form
    values = {k: form.get(k, "")[:500] for k in ("name", "email", "company", "phone")}
    values["consent"] = form.get("consent") == "yes"
    reason = bot_check("referral", code)
    if reason is not None:
        limited = rate_limited(*limits)
        if limited:
            return limited
    if reason in ("honeypot", "bad_timestamp", "too_fast"):
        protection.record_rejected_submission(rt(), form="referral", reason=reason, client=ip, code=code,
                                              tenant_id=advocate.tenant_id,
                                              detail={"program_id": program.id, "advocate_id": advocate.id})
    if reason == "honeypot":
        # Bots learn nothing: the same thank-you a person gets, and nothing recorded as a referral.
        return redirect(url_for("public.thanks", code=code), 303)
    if reason is not None:
        return _landing(found, values, notice=EXPIRED_MESSAGE if reason == "expired" else TIMING_MESSAGE, status=422)
    friend = referrals.FriendInput(values["name"], values["email"], values["company"] or None, values["phone"] or None,
                                   values["consent"])
    try:
        clean = referrals.validate_friend(friend)
    except InvalidInput as exc:
        return rate_limited(*limits) or _landing(found, values, field_errors(exc.errors), status=422)
    # One transaction: the shared rate-limit counters and the stored submission. The worker captures it.
    submission = intake.Submission(tenant_id=advocate.tenant_id, program_id=program.id, advocate_id=advocate.id, code=code,
                                   friend=clean, consent_version=program.landing.consent_version, token=token, client=ip)
    writer: intake.IntakeWriter = current_app.extensions["refstage_intake_writer"]
    refused = writer.submit(submission, [(_limit(scope), subject) for scope, subject in limits])
    if refused is not None:
        return too_many(refused)
    return redirect(url_for("public.thanks", code=code), 303)


@bp.get("/r/<code>/thanks")
def thanks(code: str):
    """Reachable by anyone who guesses a code: counted like a landing view, answers like the landing for
    unknown and paused codes, and names the program only (not the advocate)."""
    limited = rate_limited(("view_ip", client_ip()))
    if limited:
        return limited
    found, error = _lookup(code)
    if error:
        return error
    program = found.program
    return page("public/thanks.html", program=program, landing=program.landing, brand=brand(program.landing.brand_color))


# --- /join/<tenant>/<program>: self-enrolment ---------------------------------------------------------------
def _join_program(tenant_slug: str, program_slug: str):
    if not re.fullmatch(r"[a-z0-9-]{1,64}", tenant_slug or ""):
        return None, None, unavailable("unknown", 404)
    tenant, program = program_service.by_slugs(rt(), tenant_slug, program_slug)
    if tenant is None:
        return None, None, unavailable("unknown", 404)
    if program is None or not program.allow_self_enrolment or program.status == ProgramStatus.DRAFT:
        return None, None, unavailable("unknown", 404)
    if not program.accepts_referrals:
        return None, None, unavailable("paused", 410, program=program, brand=brand(program.landing.brand_color))
    return tenant, program, None


def _join_purpose() -> str:
    args = request.view_args or {}
    return f"join:{args.get('tenant_slug')}/{args.get('program_slug')}"


def _join_page(tenant, program, values=None, errors=None, notice=None, status=200):
    return page("public/join.html", status, tenant=tenant, program=program, landing=program.landing,
                brand=brand(program.landing.brand_color), values=values or {}, errors=errors or {}, notice=notice,
                form_ts=form_token("join", program.id), csrf=signed_token(_join_purpose()))


@bp.get("/join/<tenant_slug>/<program_slug>")
def join(tenant_slug: str, program_slug: str):
    limited = rate_limited(("view_ip", client_ip()))
    if limited:
        return limited
    tenant, program, error = _join_program(tenant_slug, program_slug)
    return error or _join_page(tenant, program)


@bp.post("/join/<tenant_slug>/<program_slug>")
def join_submit(tenant_slug: str, program_slug: str):
    check_signed(_join_purpose())
    limited = rate_limited(("join_ip", client_ip()))
    if limited:
        return limited
    tenant, program, error = _join_program(tenant_slug, program_slug)
    if error:
        return error
    values = {k: request.form.get(k, "")[:500] for k in ("name", "email")}
    reason = bot_check("join", program.id)
    if reason in ("honeypot", "bad_timestamp", "too_fast"):
        protection.record_rejected_submission(rt(), form="join", reason=reason, client=client_ip(), tenant_id=tenant.id,
                                              detail={"program_id": program.id})
    if reason == "honeypot":
        return page("public/joined.html", program=program, brand=brand(program.landing.brand_color), created=False)
    if reason is not None:
        return _join_page(tenant, program, values, notice=EXPIRED_MESSAGE if reason == "expired" else TIMING_MESSAGE, status=422)
    errors: dict[str, list[str]] = {}
    for check in (lambda: clean_text(values["name"], "name", required=True, max_length=200), lambda: normalise_email(values["email"])):
        try:
            check()
        except InvalidInput as exc:  # all field errors at once, not just the first
            errors.update(field_errors(exc.errors))
    if errors:
        return _join_page(tenant, program, values, errors, status=422)
    try:
        advocate, created = enrolment.enrol_advocate(
            rt(), tenant.id, program.id, name=values["name"], email=values["email"], source=AdvocateSource.FORM,
            actor=Actor(ActorKind.ADVOCATE, None, values["email"].strip().lower()[:254]))
    except InvalidInput as exc:
        errors = field_errors(exc.errors)
        if "program" in errors:
            return unavailable("paused", 410, program=program, brand=brand(program.landing.brand_color))
        return _join_page(tenant, program, values, errors, status=422)
    if not created:
        # Someone typing a known address does not get to see that person's link: it goes by email.
        notifications.send_status_link(rt(), tenant.id, advocate.id)
        return page("public/joined.html", program=program, brand=brand(program.landing.brand_color), created=False)
    link = referral_link(rt().settings.base_url, advocate.code)
    return page("public/joined.html", program=program, brand=brand(program.landing.brand_color), created=True,
                advocate=advocate, link=link,
                share_text=f"I use {_company(program)} and think you'd like it too. Here's my referral link: {link}")


# --- advocate status: request a magic link, then the page ---------------------------------------------------
@bp.get("/status")
def status_request():
    return page("public/status_request.html", values={}, errors={}, form_ts=form_token("status", "-"), csrf=signed_token("status"))


@bp.post("/status")
def status_request_submit():
    check_signed("status")
    email = request.form.get("email", "")[:254]
    limited = rate_limited(("status_ip", client_ip()), ("status_email", email.strip().lower() or None))
    if limited:
        return limited
    reason = bot_check("status", "-")
    if reason in ("honeypot", "bad_timestamp", "too_fast"):
        protection.record_rejected_submission(rt(), form="status", reason=reason, client=client_ip())
    if reason == "honeypot":
        return page("public/status_sent.html")
    if reason is not None:
        return page("public/status_request.html", 422, values={"email": email}, errors={},
                    notice=EXPIRED_MESSAGE if reason == "expired" else TIMING_MESSAGE, form_ts=form_token("status", "-"),
                    csrf=signed_token("status"))
    try:
        normalise_email(email)
    except InvalidInput as exc:
        return page("public/status_request.html", 422, values={"email": email}, errors=field_errors(exc.errors),
                    form_ts=form_token("status", "-"), csrf=signed_token("status"))
    notifications.request_status_links(rt(), email)
    return page("public/status_sent.html")


@bp.get("/me/<token>")
def advocate_status(token: str):
    limited = rate_limited(("view_ip", client_ip()))
    if limited:
        return limited
    try:
        tenant_id, advocate_id = notifications.read_status_token(rt(), token)
    except notifications.StatusLinkExpired:
        return unavailable("expired", 410)
    except notifications.StatusLinkInvalid:
        return unavailable("invalid", 404)
    try:
        data = notifications.advocate_status(rt(), tenant_id, advocate_id)
    except NotFound:
        return unavailable("invalid", 404)
    program = data["program"]
    return page("public/status.html", brand=brand(program.landing.brand_color), **data,
                share_text=f"I use {_company(program)} and think you'd like it too. Here's my referral link: {data['link']}")
