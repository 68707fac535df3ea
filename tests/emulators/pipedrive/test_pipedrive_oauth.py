"""OAuth: authorize page -> code -> token (HTTP Basic) -> API -> refresh rotation -> revoke."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import requests

CLIENT = ("refstage-demo", "refstage-demo-secret")
REDIRECT = "http://127.0.0.1:5000/connect/pipedrive/callback"


def _code(emu, anon, state="xyz", decision="allow", password="demo") -> dict:
    page = anon.get("/oauth/authorize", params={"client_id": CLIENT[0], "redirect_uri": REDIRECT, "state": state})
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert 'name="decision" value="allow"' in page.text
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page.text))
    form.update(email="admin@refstage.test", password=password, decision=decision)
    r = anon.post("/oauth/authorize", data=form, allow_redirects=False)
    if r.status_code != 302:
        return {"status": r.status_code}
    loc = r.headers["Location"]
    assert loc.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(loc).query).items()}


def test_full_flow_with_rotation_and_expiry(emu, anon, control):
    got = _code(emu, anon)
    assert got["state"] == "xyz"
    r = anon.post("/oauth/token", auth=CLIENT,
                  data={"grant_type": "authorization_code", "code": got["code"], "redirect_uri": REDIRECT})
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["api_domain"] == emu.base_url and token["expires_in"] == 3600
    assert token["token_type"] == "Bearer" and "deals:full" in token["scope"].split(",")
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert anon.get("/api/v2/deals", headers=bearer).status_code == 200
    me = anon.get("/api/v1/users/me", headers=bearer).json()["data"]
    assert me["id"] == 1 and me["company_domain"] == "refstage-demo"
    # the code is single-use
    again = anon.post("/oauth/token", auth=CLIENT,
                      data={"grant_type": "authorization_code", "code": got["code"], "redirect_uri": REDIRECT})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # expiry on the emulated clock
    control.post("/clock/advance", {"seconds": 3601})
    expired = anon.get("/api/v2/deals", headers=bearer)
    assert expired.status_code == 401 and "expired" in expired.json()["error_info"]
    # refresh rotates
    r2 = anon.post("/oauth/token", auth=CLIENT, data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    assert r2.status_code == 200
    new = r2.json()
    assert new["refresh_token"] != token["refresh_token"] and new["api_domain"] == emu.base_url
    assert anon.get("/api/v2/deals", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code == 200
    reuse = anon.post("/oauth/token", auth=CLIENT, data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    # revoke the refresh token: its access tokens die with it
    assert anon.post("/oauth/revoke", auth=CLIENT, data={"token": new["refresh_token"],
                                                         "token_type_hint": "refresh_token"}).status_code == 200
    assert anon.get("/api/v2/deals", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code == 401
    dead = anon.post("/oauth/token", auth=CLIENT, data={"grant_type": "refresh_token", "refresh_token": new["refresh_token"]})
    assert dead.status_code == 400


def test_client_authentication_is_http_basic(emu, anon):
    got = _code(emu, anon)
    form = {"grant_type": "authorization_code", "code": got["code"], "redirect_uri": REDIRECT}
    assert anon.post("/oauth/token", data=dict(form, client_id=CLIENT[0], client_secret=CLIENT[1])).status_code == 401
    assert anon.post("/oauth/token", auth=(CLIENT[0], "wrong"), data=form).json()["error"] == "invalid_client"
    assert anon.post("/oauth/token", auth=CLIENT, data=dict(form, redirect_uri=REDIRECT + "x")).status_code == 400
    assert anon.post("/oauth/token", auth=CLIENT, data={"grant_type": "password"}).json()["error"] == "unsupported_grant_type"


def test_deny_bad_login_and_bad_redirect(emu, anon):
    denied = _code(emu, anon, decision="deny")
    assert denied == {"error": "access_denied", "state": "xyz"}
    assert _code(emu, anon, password="nope") == {"status": 401}
    bad = anon.get("/oauth/authorize", params={"client_id": CLIENT[0], "redirect_uri": "https://evil.example/cb"})
    assert bad.status_code == 400
    assert anon.get("/oauth/authorize", params={"client_id": "who", "redirect_uri": REDIRECT}).status_code == 400


def test_token_ttl_is_configurable(cert_dir, session_for):
    from refstage_devkit.emulators.pipedrive.server import PipedriveEmulator

    with PipedriveEmulator(port=0, seed="empty", cert_dir=cert_dir, token_ttl=5) as emu:
        s = session_for(emu)
        got = _code(emu, s)
        r = s.post("/oauth/token", auth=CLIENT, data={"grant_type": "authorization_code",
                                                      "code": got["code"], "redirect_uri": REDIRECT})
        assert r.json()["expires_in"] == 5


def test_plain_requests_trust_only_the_local_ca(emu):
    try:
        requests.get(emu.base_url + "/api/v2/deals", verify="/etc/ssl/certs/ca-certificates.crt", timeout=5)
    except requests.exceptions.SSLError:
        pass
    else:  # pragma: no cover
        raise AssertionError("a public CA bundle must not trust the emulator")
