"""Demo only (REFSTAGE_ENV=demo): play the sales rep in the emulated CRMs — convert a referred lead,
close its opportunity, win a Pipedrive deal — so a newcomer sees the whole loop in a few clicks.

These buttons call the emulators as a rep's CRM screen would; in any other environment the pages
are 404. The product itself never learns of these actions except through the CRM (push and poll)."""

from __future__ import annotations

import os
from typing import Any

import requests
from flask import abort, current_app, flash, redirect, render_template, url_for

from refstage.services import programs as program_service
from refstage.services import referrals as referral_service
from refstage.web.admin import bp
from refstage.web.admin.auth import requires, rt, tenant_id

SF_VERSION = "62.0"


def _urls() -> tuple[str | None, str | None]:
    if rt().settings.env != "demo":
        abort(404)
    return os.environ.get("REFSTAGE_DEMO_SALESFORCE_URL"), os.environ.get("REFSTAGE_DEMO_PIPEDRIVE_URL")


def _sf_admin() -> tuple[str, str]:
    """The emulated org's admin sign-in. The credentials belong to the emulator (refstage-devkit), so
    `refstage demo` hands them to the web process in its environment; the product carries none."""
    return os.environ.get("REFSTAGE_DEMO_SALESFORCE_USERNAME", ""), os.environ.get("REFSTAGE_DEMO_SALESFORCE_PASSWORD", "")


def _sf_token(sf: str) -> str:
    cache = current_app.extensions.setdefault("demo_sf_token", {})
    if sf not in cache:
        username, password = _sf_admin()
        r = requests.post(f"{sf}/services/oauth2/token", data={
            "grant_type": "password", "client_id": os.environ.get("REFSTAGE_DEMO_SALESFORCE_CLIENT_ID", ""),
            "client_secret": os.environ.get("REFSTAGE_DEMO_SALESFORCE_CLIENT_SECRET", ""),
            "username": username, "password": password}, timeout=10)
        r.raise_for_status()
        cache[sf] = r.json()["access_token"]
    return cache[sf]


def _sf(method: str, sf: str, path: str, **kw: Any) -> requests.Response:
    r = requests.request(method, f"{sf}{path}", headers={"Authorization": f"Bearer {_sf_token(sf)}"}, timeout=15, **kw)
    if r.status_code == 401:  # the emulated session timed out: sign in again once
        current_app.extensions["demo_sf_token"].pop(sf, None)
        r = requests.request(method, f"{sf}{path}", headers={"Authorization": f"Bearer {_sf_token(sf)}"}, timeout=15, **kw)
    return r


@bp.get("/demo")
@requires("admin")
def demo_tools():
    sf, pd = _urls()
    referrals = referral_service.list_referrals(rt(), tenant_id(), limit=50)
    programs = {p.id: p for p in program_service.list_programs(rt(), tenant_id())}
    waiting = sum(1 for r in referrals if r.status.value == "captured")  # the page refreshes itself meanwhile
    return render_template("admin/demo.html", referrals=referrals, programs=programs, sf=sf, pd=pd, waiting=waiting,
                           sf_admin=_sf_admin())


def _referral(referral_id: str):
    return referral_service.get_referral(rt(), tenant_id(), referral_id)


@bp.post("/demo/<referral_id>/convert")
@requires("admin")
def demo_convert(referral_id: str):
    sf, _ = _urls()
    referral = _referral(referral_id)
    if not sf or not referral.crm.lead_id:
        flash("This referral has no Lead yet: the worker routes it within a few seconds.", "error")
        return redirect(url_for("admin.demo_tools"))
    r = requests.post(f"{sf}/_emulator/convert-lead", json={"leadId": referral.crm.lead_id,
                      "opportunityName": f"{referral.friend_company or referral.friend_name} — referral"}, timeout=15)
    if r.ok:
        flash(f"Lead {referral.crm.lead_id} converted in Salesforce; opportunity {r.json().get('opportunityId')} created.")
    else:
        flash(f"Salesforce refused: {r.text[:300]}", "error")
    return redirect(url_for("admin.demo_tools"))


@bp.post("/demo/<referral_id>/close-won")
@requires("admin")
def demo_close_won(referral_id: str):
    sf, _ = _urls()
    referral = _referral(referral_id)
    opportunity_id = referral.crm.opportunity_id
    if not sf:
        abort(404)
    if not opportunity_id and referral.crm.lead_id:
        lead = _sf("GET", sf, f"/services/data/v{SF_VERSION}/sobjects/Lead/{referral.crm.lead_id}").json()
        opportunity_id = lead.get("ConvertedOpportunityId")
    if not opportunity_id:
        flash("Convert the lead first: the opportunity is created by the conversion.", "error")
        return redirect(url_for("admin.demo_tools"))
    r = _sf("PATCH", sf, f"/services/data/v{SF_VERSION}/sobjects/Opportunity/{opportunity_id}",
            json={"StageName": "Closed Won", "Amount": 12000})
    if r.status_code == 204:
        flash(f"Opportunity {opportunity_id} is Closed Won. Salesforce notifies the backend; watch the review queue "
              "and reload the rep's Opportunity page to see the referral qualify and its rewards appear.")
    else:
        flash(f"Salesforce refused: {r.text[:300]}", "error")
    return redirect(url_for("admin.demo_tools"))


@bp.post("/demo/<referral_id>/win-deal")
@requires("admin")
def demo_win_deal(referral_id: str):
    _, pd = _urls()
    referral = _referral(referral_id)
    if not pd or not referral.crm.deal_id:
        flash("This referral has no Pipedrive deal yet.", "error")
        return redirect(url_for("admin.demo_tools"))
    r = requests.post(f"{pd}/_emulator/deals/{referral.crm.deal_id}/win", json={}, timeout=15)
    flash(f"Deal {referral.crm.deal_id} won in Pipedrive." if r.ok else f"Pipedrive refused: {r.text[:300]}",
          "message" if r.ok else "error")
    return redirect(url_for("admin.demo_tools"))
