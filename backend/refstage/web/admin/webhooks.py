"""Outbound webhooks (admins): endpoints (URL, events, description), created with a signing secret that
is shown once (rotate for a new one), enabled or disabled; a test ping; the delivery log with status,
attempts and last answer, and redeliver. Everything goes through `services.webhooks`.

Endpoints are disabled rather than deleted here: deleting one would also delete its delivery log,
including the record that a reward was already sent to the payout system."""

from __future__ import annotations

import json

from flask import flash, redirect, render_template, request, url_for

from refstage.domain.errors import InvalidInput
from refstage.services import webhooks as hooks
from refstage.web.admin import bp
from refstage.web.admin.auth import ADMIN, actor, requires, rt, tenant_id

STATUSES = ("pending", "sending", "retrying", "delivered", "failed")
EVENT_TEXT = {
    "referral.captured": "a friend was referred",
    "referral.qualified": "a referral reached the milestone",
    "reward.approved": "a reward was approved",
    "reward.issued": "a reward was marked as paid",
    hooks.PAYOUT_REQUESTED: "an admin sent a reward to the payout system (opt-in)",
}
NO_STORE = {"Cache-Control": "no-store"}


def _filters():
    endpoint = request.args.get("endpoint_id") or None
    status = request.args.get("status") or None
    event = request.args.get("event") or None
    return (endpoint, status if status in STATUSES else None,
            event if event in hooks.ENDPOINT_EVENTS + ("ping",) else None)


def _page(*, errors=None, values=None, status=200, secret=None, secret_for=None):
    endpoint_id, dstatus, event = _filters()
    endpoints = hooks.list_endpoints(rt(), tenant_id())
    if endpoint_id and endpoint_id not in {e["id"] for e in endpoints}:
        endpoint_id = None
    deliveries = hooks.list_deliveries(rt(), tenant_id(), endpoint_id=endpoint_id, status=dstatus, event=event, limit=100)
    urls = {e["id"]: e["url"] for e in endpoints}
    return render_template("admin/webhooks.html", endpoints=endpoints, deliveries=deliveries, urls=urls,
                           events=hooks.ENDPOINT_EVENTS, default_events=hooks.WEBHOOK_EVENTS, event_text=EVENT_TEXT,
                           statuses=STATUSES, f_endpoint=endpoint_id or "", f_status=dstatus or "", f_event=event or "",
                           errors=errors or {}, values=values or {}, secret=secret, secret_for=secret_for), status


@bp.route("/webhooks")
@requires(*ADMIN)
def webhooks():
    return _page()


@bp.route("/webhooks", methods=["POST"])
@requires(*ADMIN)
def webhook_create():
    values = {"url": request.form.get("url", "").strip(), "description": request.form.get("description", ""),
              "events": request.form.getlist("events")}
    try:
        endpoint, secret = hooks.create_endpoint(rt(), tenant_id(), values["url"], values["events"], actor(), values["description"])
    except InvalidInput as exc:
        return _page(errors=exc.errors, values=values, status=400)
    # The secret is in this response only: stored sealed, never put in the (readable) session cookie.
    body, _ = _page(secret=secret, secret_for=endpoint)
    return body, 201, NO_STORE


def _edit(endpoint, *, errors=None, status=200):
    return render_template("admin/webhook_form.html", endpoint=endpoint, events=hooks.ENDPOINT_EVENTS, event_text=EVENT_TEXT,
                           errors=errors or {}), status


@bp.route("/webhooks/<endpoint_id>")
@requires(*ADMIN)
def webhook_edit(endpoint_id: str):
    return _edit(hooks.get_endpoint(rt(), tenant_id(), endpoint_id))


@bp.route("/webhooks/<endpoint_id>", methods=["POST"])
@requires(*ADMIN)
def webhook_update(endpoint_id: str):
    current = hooks.get_endpoint(rt(), tenant_id(), endpoint_id)  # 404 across tenants
    data = {"url": request.form.get("url", "").strip(), "description": request.form.get("description", ""),
            "events": request.form.getlist("events"), "active": request.form.get("active") == "on"}
    try:
        hooks.update_endpoint(rt(), tenant_id(), endpoint_id, data, actor())
    except InvalidInput as exc:
        return _edit({**current, **data}, errors=exc.errors, status=400)
    flash("Webhook endpoint saved.")
    return redirect(url_for("admin.webhooks"))


@bp.route("/webhooks/<endpoint_id>/active", methods=["POST"])
@requires(*ADMIN)
def webhook_active(endpoint_id: str):
    active = request.form.get("active") == "1"
    endpoint = hooks.update_endpoint(rt(), tenant_id(), endpoint_id, {"active": active}, actor())
    flash(f"Endpoint {endpoint['url']} {'enabled' if active else 'disabled: nothing more is sent to it'}.")
    return redirect(url_for("admin.webhooks"))


@bp.route("/webhooks/<endpoint_id>/rotate", methods=["POST"])
@requires(*ADMIN)
def webhook_rotate(endpoint_id: str):
    endpoint = hooks.get_endpoint(rt(), tenant_id(), endpoint_id)
    secret = hooks.rotate_secret(rt(), tenant_id(), endpoint_id, actor())
    body, _ = _page(secret=secret, secret_for=endpoint)
    return body, 200, NO_STORE


@bp.route("/webhooks/<endpoint_id>/test", methods=["POST"])
@requires(*ADMIN)
def webhook_test(endpoint_id: str):
    endpoint = hooks.get_endpoint(rt(), tenant_id(), endpoint_id)
    hooks.send_test_event(rt(), tenant_id(), endpoint_id, actor())
    flash(f"Test ping queued for {endpoint['url']}; its answer appears in the delivery log below (reload).")
    return redirect(url_for("admin.webhooks", endpoint_id=endpoint_id) + "#deliveries")


@bp.route("/webhooks/deliveries/<delivery_id>")
@requires(*ADMIN)
def webhook_delivery(delivery_id: str):
    delivery = hooks.get_delivery(rt(), tenant_id(), delivery_id)
    endpoint = hooks.get_endpoint(rt(), tenant_id(), delivery["endpoint_id"])
    payload = json.dumps(delivery["payload"], indent=2, sort_keys=True)
    return render_template("admin/webhook_delivery.html", d=delivery, endpoint=endpoint, payload=payload)


@bp.route("/webhooks/deliveries/<delivery_id>/redeliver", methods=["POST"])
@requires(*ADMIN)
def webhook_redeliver(delivery_id: str):
    before = hooks.get_delivery(rt(), tenant_id(), delivery_id)
    out = hooks.redeliver(rt(), tenant_id(), delivery_id, actor())
    if before["status"] in ("pending", "retrying", "sending"):
        flash("This delivery is still being attempted; nothing new was queued.", "error")
    else:
        flash(f"Delivery queued again ({out['event']}).")
    return redirect(url_for("admin.webhook_delivery", delivery_id=delivery_id))
