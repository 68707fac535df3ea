"""Record pages of the emulated org with the package's Lightning web components mounted, as a rep sees them.

``/lightning/r/{Object}/{id}/view`` (and ``/lightning/r/{id}/view``, the form the components link with) shows
the record's highlights and, on Opportunity and Account pages, the package's component for that page. The
components run from the bundle ``scripts/build-preview.mjs`` builds (``make preview``); their wire adapters
call this org's UI API with the session's access token, which the page carries as a Lightning page carries
its session. Signing in is the org's own: ``/lightning/login`` with a user's username and password.
"""

from __future__ import annotations

import html
import json
import mimetypes
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from werkzeug.security import safe_join
from werkzeug.wrappers import Request, Response

from .. import ids
from ..errors import SFError
from ..ui_api import ORG_CURRENCY, _user_zone, field_value

if TYPE_CHECKING:
    from ..server import Org

DIST = Path(__file__).resolve().parent / "dist"
API_VERSION = "65.0"
SESSION_COOKIE = "sf_emu_sid"
COMPONENTS = {"Opportunity": ("c-referral-attribution", "Referral Attribution"),
              "Account": ("c-account-referrals", "Account Referrals")}
HIGHLIGHTS = {
    "Opportunity": ["AccountId", "StageName", "Amount", "CloseDate", "OwnerId"],
    "Account": ["Type", "Industry", "Phone", "Referral__c", "OwnerId"],
    "Contact": ["AccountId", "Title", "Email", "Phone"],
    "Referral__c": ["Status__c", "Advocate__c", "Program__c", "Friend_Name__c", "Captured_Date__c"],
    "Referral_Program__c": ["Status__c", "Milestone_Value__c"],
    "Referral_Reward__c": ["Referral__c", "Status__c", "Amount__c", "Currency_Code__c"],
}
OBJECT_ICONS = {"Opportunity": "opportunity", "Account": "account", "Contact": "contact", "Lead": "lead"}


def _session_user(org: Org, request: Request) -> str | None:
    return org.oauth.browser_sessions.get(request.cookies.get(SESSION_COOKIE, ""))


def _page_token(org: Org, request: Request, user_id: str) -> str:
    """The access token this browser session's pages call the API with; a new one when it lapsed."""
    tokens: dict[str, str] = org.__dict__.setdefault("preview_tokens", {})
    sid = request.cookies.get(SESSION_COOKIE, "")
    token = tokens.get(sid)
    if token:
        try:
            if org.oauth.validate(token) == user_id:
                return token
        except SFError:
            pass
    token = org.oauth.issue_access(user_id, org.client_id, "api web")
    tokens[sid] = token
    return token


def _shell(title: str, body: str, status: int = 200, script: str = "") -> Response:
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{html.escape(title)} | Salesforce (emulated org)</title>
<link rel="stylesheet" href="/lightning/preview/assets/styles/salesforce-lightning-design-system.min.css">
<style>
body {{ background: #b0c4df; min-height: 100vh; }}
.preview-bar {{ background: #032d60; color: #fff; }}
.preview-bar a {{ color: #fff; text-decoration: underline; }}
</style>
</head>
<body>
<header class="preview-bar slds-p-horizontal_medium slds-p-vertical_x-small" role="banner">
<strong>Refstage</strong> · record page preview of the emulated Salesforce org (the package's components on the
open-source LWC engine)
</header>
<main class="slds-p-around_medium">{body}</main>
{script}
</body>
</html>"""
    return Response(page, status=status, content_type="text/html; charset=utf-8",
                    headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                             "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff",
                             # Scripts only from the org itself (the config block is JSON, never run); styles
                             # inline too, as the engine's synthetic shadow injects component styles.
                             "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
                                                        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                                        "object-src 'none'; base-uri 'none'; "
                                                        "frame-ancestors 'none'; form-action 'self'"})


def _message(title: str, text: str, status: int) -> Response:
    return _shell(title, f'<div class="slds-card slds-p-around_medium"><h1 class="slds-text-heading_medium">'
                         f'{html.escape(title)}</h1><p class="slds-m-top_small">{text}</p></div>', status)


def _link(record_id: str, text: str) -> str:
    return f'<a href="/lightning/r/{quote(record_id)}/view">{html.escape(text)}</a>'


def _highlight(org: Org, obj: Any, rec: dict[str, Any], name: str, zone: Any) -> tuple[str, str] | None:
    f = obj.fields.get(name)
    if f is None:
        return None
    value = rec.get(name)
    if f.type == "reference":
        if not value:
            return f.label, ""
        target_obj = org.store.object_for_id(value)
        target = org.store.get(target_obj, value) if target_obj else None
        name_field = next((x.name for x in target_obj.fields.values() if x.name_field), "Id") if target_obj else "Id"
        return f.label.removesuffix(" ID"), _link(value, str((target or {}).get(name_field) or value))
    shown = field_value(f, value, zone)
    text = shown["displayValue"] if shown["displayValue"] is not None else shown["value"]
    return f.label, html.escape("" if text is None else str(text))


def record_page(org: Org, request: Request, record_id: str, object_name: str | None = None) -> Response:
    user_id = _session_user(org, request)
    if user_id is None:
        return Response(status=302, headers={"Location": "/lightning/login?startURL=" + quote(request.full_path)})
    rid = ids.normalize(record_id)
    obj = org.store.object_for_id(rid) if rid else None
    rec = org.store.get(obj, rid) if obj and rid else None
    if obj is None or rec is None or (object_name and object_name.lower() != obj.name.lower()):
        return _message("Record not found", "This record doesn't exist or was deleted.", 404)
    zone = _user_zone(org, user_id)
    name_field = next((f.name for f in obj.fields.values() if f.name_field), "Id")
    title = str(rec.get(name_field) or rec["Id"])
    rows = [h for h in (_highlight(org, obj, rec, n, zone) for n in HIGHLIGHTS.get(obj.name, [])) if h]
    highlights = "".join(
        f'<li class="slds-page-header__detail-block"><div class="slds-text-title slds-truncate">'
        f'{html.escape(label)}</div><div class="slds-truncate">{value}</div></li>' for label, value in rows)
    icon = OBJECT_ICONS.get(obj.name, "custom")
    header = f"""
<div class="slds-page-header slds-page-header_record-home">
  <div class="slds-page-header__row"><div class="slds-page-header__col-title"><div class="slds-media">
    <div class="slds-media__figure"><span class="slds-icon_container slds-icon-standard-{icon}">
      <svg class="slds-icon slds-page-header__icon" aria-hidden="true"><use
        xlink:href="/lightning/preview/assets/icons/standard-sprite/svg/symbols.svg#{icon}"></use></svg></span></div>
    <div class="slds-media__body"><div class="slds-page-header__name"><div class="slds-page-header__name-title">
      <span>{html.escape(obj.label)}</span>
      <h1 class="slds-page-header__title slds-truncate" title="{html.escape(title)}">{html.escape(title)}</h1>
    </div></div></div>
  </div></div></div>
  <div class="slds-page-header__row slds-page-header__row_gutters"><div class="slds-page-header__col-details">
    <ul class="slds-page-header__detail-row">{highlights}</ul></div></div>
</div>"""
    component = COMPONENTS.get(obj.name)
    script = ""
    if component is None:
        side = ('<div class="slds-card slds-p-around_medium"><p class="slds-text-color_weak">The Refstage package '
                'places no component on this page.</p></div>')
    elif not (DIST / "preview.js").exists():
        side = ('<div class="slds-notify slds-notify_alert slds-alert_warning" role="alert">The components are not '
                'built on this machine: run <code>make preview</code> (or <code>npm run build:preview</code>) and '
                'reload.</div>')
    else:
        config = {"recordId": rec["Id"], "objectApiName": obj.name, "apiVersion": API_VERSION,
                  "accessToken": _page_token(org, request, user_id), "orgCurrency": ORG_CURRENCY,
                  "userTimeZone": _iana(zone)}
        side = (f'<section aria-label="{html.escape(component[1])}" data-component="{component[0]}" '
                f'id="component-slot"></section>')
        data = json.dumps(config).replace("<", "\\u003c")
        script = (f'<script type="application/json" id="preview-config">{data}</script>'
                  '<script src="/lightning/preview/preview.js"></script>')
    body = f"""{header}
<div class="slds-grid slds-wrap slds-gutters slds-m-top_medium">
  <div class="slds-col slds-size_1-of-1 slds-large-size_7-of-12">
    <div class="slds-card slds-p-around_medium"><h2 class="slds-text-heading_small">Details</h2>
    <dl class="slds-list_horizontal slds-wrap slds-m-top_small">{''.join(
        f'<dt class="slds-item_label slds-text-color_weak">{html.escape(label)}</dt>'
        f'<dd class="slds-item_detail">{value or "&nbsp;"}</dd>' for label, value in rows)}</dl></div>
  </div>
  <div class="slds-col slds-size_1-of-1 slds-large-size_5-of-12">{side}</div>
</div>"""
    return _shell(title, body, script=script)


def _iana(zone: Any) -> str:
    key = getattr(zone, "key", None)
    return "UTC" if key in (None, "GMT") else str(key)


def record_page_typed(org: Org, request: Request, object_name: str, record_id: str) -> Response:
    return record_page(org, request, record_id, object_name)


def _safe_start(url: str | None) -> str:
    if url and url.startswith("/lightning/r/") and "//" not in url and "\\" not in url:
        return url
    return "/lightning/o/Opportunity/home"


def login(org: Org, request: Request) -> Response:
    start = _safe_start(request.values.get("startURL"))
    error = ""
    if request.method == "POST":
        user_id = org.oauth.check_password(request.form.get("username", ""), request.form.get("pw", ""))
        if user_id is not None:
            sid = secrets.token_urlsafe(24)
            org.oauth.browser_sessions[sid] = user_id
            response = Response(status=302, headers={"Location": start})
            response.set_cookie(SESSION_COOKIE, sid, httponly=True, secure=True, samesite="Lax", path="/")
            return response
        error = ('<div class="slds-notify slds-notify_alert slds-alert_error" role="alert">Please check your username '
                 "and password.</div>")
    body = f"""<div class="slds-card slds-p-around_large" style="max-width: 26rem; margin: 3rem auto;">
<h1 class="slds-text-heading_medium slds-m-bottom_medium">Log in to the emulated org</h1>{error}
<form method="post" action="/lightning/login">
<input type="hidden" name="startURL" value="{html.escape(start)}">
<div class="slds-form-element slds-m-bottom_small"><label class="slds-form-element__label" for="username">Username</label>
<div class="slds-form-element__control"><input class="slds-input" type="email" id="username" name="username"
 autocomplete="username" required></div></div>
<div class="slds-form-element slds-m-bottom_medium"><label class="slds-form-element__label" for="password">Password</label>
<div class="slds-form-element__control"><input class="slds-input" type="password" id="password" name="pw"
 autocomplete="current-password" required></div></div>
<button class="slds-button slds-button_brand" type="submit" id="Login">Log In</button>
</form></div>"""
    return _shell("Login", body, 401 if error else 200)


def opportunity_home(org: Org, request: Request) -> Response:
    """The most recently changed opportunity: where a sign-in without a start page lands."""
    if _session_user(org, request) is None:
        return Response(status=302, headers={"Location": "/lightning/login"})
    obj = org.store.objects["Opportunity"]
    with org.store.lock:
        row = org.store.db.execute(f"SELECT Id FROM {obj.table} WHERE IsDeleted=0 ORDER BY SystemModstamp DESC "
                                   "LIMIT 1").fetchone()
    if row is None:
        return _message("No opportunities", "This org has no opportunities yet.", 404)
    return Response(status=302, headers={"Location": f"/lightning/r/Opportunity/{row[0]}/view"})


def asset(org: Org, request: Request, name: str) -> Response:
    target = safe_join(str(DIST), name)
    if target is None or not Path(target).is_file():
        return Response("Not Found", 404)
    content_type = mimetypes.guess_type(target)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type in ("application/javascript", "image/svg+xml"):
        content_type += "; charset=utf-8"
    return Response(Path(target).read_bytes(), content_type=content_type,
                    headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


def routes() -> list[tuple[str, list[str], Any]]:
    return [
        ("/lightning/login", ["GET", "POST"], login),
        ("/lightning/o/Opportunity/home", ["GET"], opportunity_home),
        ("/lightning/r/<object_name>/<record_id>/view", ["GET"], record_page_typed),
        ("/lightning/r/<record_id>/view", ["GET"], record_page),
        ("/lightning/preview/<path:name>", ["GET"], asset),
    ]
