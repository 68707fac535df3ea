"""OAuth 2.0 / OpenID Connect over HTTPS, driven like a browser and like a backend would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession

from sf_emu_helpers import ADMIN, CLIENT_ID, CLIENT_SECRET, VERSION, password_token

REDIRECT = "http://127.0.0.1:5173/oauth/callback"


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action"), "fields": {}, "buttons": []})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        elif tag == "button" and self.forms:
            self.forms[-1]["buttons"].append((a.get("name"), a.get("value")))


def _form(html: str) -> dict:
    p = _Forms()
    p.feed(html)
    assert p.forms, html
    return p.forms[0]


def browser_login(base: str, challenge: str | None, state: str = "st-1", scope: str | None = None,
                  nonce: str | None = None) -> str:
    """Log in and allow on the HTML pages as a user would; return the code from the redirect."""
    s = requests.Session()
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "state": state}
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    if scope:
        params["scope"] = scope
    if nonce:
        params["nonce"] = nonce
    page = s.get(f"{base}/services/oauth2/authorize", params=params, timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    login = _form(page.text)
    fields = {**login["fields"], "username": ADMIN[0], "pw": ADMIN[1]}
    allow_page = s.post(base + login["action"], data=fields, timeout=10)
    assert allow_page.status_code == 200 and "Allow" in allow_page.text
    allow = _form(allow_page.text)
    assert ("action", "allow") in allow["buttons"]
    r = s.post(base + allow["action"], data={**allow["fields"], "action": "allow"}, allow_redirects=False,
               timeout=10)
    assert r.status_code == 302
    loc = urlsplit(r.headers["Location"])
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == REDIRECT
    q = parse_qs(loc.query)
    assert q["state"] == [state]
    return q["code"][0]


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def exchange(base: str, code: str, verifier: str | None) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "redirect_uri": REDIRECT}
    if verifier:
        data["code_verifier"] = verifier
    return requests.post(f"{base}/services/oauth2/token", data=data, timeout=10)


def test_web_server_flow_with_pkce_returns_salesforce_token_fields(emu):
    verifier, challenge = pkce()
    code = browser_login(emu.base_url, challenge)
    r = exchange(emu.base_url, code, verifier)
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["access_token", "refresh_token", "signature", "scope", "instance_url", "id",
                          "token_type", "issued_at"]
    assert "expires_in" not in body
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == emu.base_url
    assert re.fullmatch(r"\d{13}", body["issued_at"])
    assert re.fullmatch(rf"{re.escape(emu.base_url)}/id/00D\w{{15}}/005\w{{15}}", body["id"])
    expected = base64.b64encode(hmac.new(CLIENT_SECRET.encode(), (body["id"] + body["issued_at"]).encode(),
                                         hashlib.sha256).digest()).decode()
    assert body["signature"] == expected
    # the code is single use
    again = exchange(emu.base_url, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # and the token works with simple-salesforce, unmodified
    sf = Salesforce(instance_url=body["instance_url"], session_id=body["access_token"], version=VERSION)
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 12


def test_wrong_pkce_verifier_is_invalid_grant(emu):
    _, challenge = pkce()
    code = browser_login(emu.base_url, challenge)
    r = exchange(emu.base_url, code, "not-the-verifier-" + "x" * 40)
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "invalid code verifier"}


def test_login_page_rejects_bad_password_and_deny_redirects_with_error(emu):
    s = requests.Session()
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "state": "x"}
    page = s.get(f"{emu.base_url}/services/oauth2/authorize", params=params, timeout=10)
    login = _form(page.text)
    bad = s.post(emu.base_url + login["action"], data={**login["fields"], "username": ADMIN[0], "pw": "nope"})
    assert bad.status_code == 401 and "check your username and password" in bad.text
    ok = s.post(emu.base_url + login["action"], data={**login["fields"], "username": ADMIN[0], "pw": ADMIN[1]})
    allow = _form(ok.text)
    r = s.post(emu.base_url + allow["action"], data={**allow["fields"], "action": "deny"}, allow_redirects=False)
    q = parse_qs(urlsplit(r.headers["Location"]).query)
    assert q["error"] == ["access_denied"] and q["state"] == ["x"]


def test_authorize_rejects_unknown_client_and_foreign_redirect(emu):
    r = requests.get(f"{emu.base_url}/services/oauth2/authorize", params={
        "response_type": "code", "client_id": "nope", "redirect_uri": REDIRECT}, timeout=10)
    assert r.status_code == 400 and "invalid_client_id" in r.text
    r = requests.get(f"{emu.base_url}/services/oauth2/authorize", params={
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": "https://evil.example/cb"}, timeout=10)
    assert r.status_code == 400 and "redirect_uri_mismatch" in r.text


def test_refresh_grant_and_revocation(emu):
    verifier, challenge = pkce()
    body = exchange(emu.base_url, browser_login(emu.base_url, challenge), verifier).json()
    r = requests.post(f"{emu.base_url}/services/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET}, timeout=10)
    assert r.status_code == 200
    fresh = r.json()
    assert "refresh_token" not in fresh and "expires_in" not in fresh
    assert fresh["access_token"] != body["access_token"]
    rv = requests.post(f"{emu.base_url}/services/oauth2/revoke", data={"token": body["refresh_token"]}, timeout=10)
    assert rv.status_code == 200
    r = requests.post(f"{emu.base_url}/services/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET}, timeout=10)
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "expired access/refresh token"}
    # access tokens minted from the revoked refresh token die with it
    q = requests.get(f"{emu.base_url}/services/data/v{VERSION}/limits",
                     headers={"Authorization": f"Bearer {fresh['access_token']}"}, timeout=10)
    assert q.status_code == 401 and q.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_password_and_client_credentials_grants(emu):
    body = password_token(emu)
    assert "refresh_token" not in body and body["token_type"] == "Bearer"
    r = requests.post(f"{emu.base_url}/services/oauth2/token", data={
        "grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert r.status_code == 200 and r.json()["access_token"]
    r = requests.post(f"{emu.base_url}/services/oauth2/token", data={
        "grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "username": ADMIN[0], "password": "wrong"}, timeout=10)
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "authentication failure"}
    r = requests.post(f"{emu.base_url}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "bad"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_client"
    r = requests.post(f"{emu.base_url}/services/oauth2/token", data={
        "grant_type": "magic", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, timeout=10)
    assert r.json()["error"] == "unsupported_grant_type"


def test_session_timeout_gives_invalid_session_id(cert_dir):
    from sf_emu_helpers import make_emulator

    with make_emulator(cert_dir, seed="empty", session_timeout=60) as emu:
        tok = password_token(emu)["access_token"]
        sf = Salesforce(instance_url=emu.base_url, session_id=tok, version=VERSION)
        sf.query("SELECT Id FROM Account")
        emu.control.advance_clock(61)
        r = requests.get(f"{emu.base_url}/services/data/v{VERSION}/query", params={"q": "SELECT Id FROM Account"},
                         headers={"Authorization": f"Bearer {tok}"}, timeout=10)
        assert r.status_code == 401
        assert r.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID",
                             "fields": []}]
        try:
            sf.query("SELECT Id FROM Account")
        except SalesforceExpiredSession:
            pass
        else:  # pragma: no cover
            raise AssertionError("simple-salesforce should see an expired session")


def test_userinfo_identity_and_openid_connect(emu):
    verifier, challenge = pkce()
    code = browser_login(emu.base_url, challenge, scope="openid api refresh_token", nonce="n-123")
    body = exchange(emu.base_url, code, verifier).json()
    assert "id_token" in body
    h = {"Authorization": f"Bearer {body['access_token']}"}
    info = requests.get(f"{emu.base_url}/services/oauth2/userinfo", headers=h, timeout=10).json()
    assert info["preferred_username"] == ADMIN[0] and info["email"] == ADMIN[0]
    assert info["organization_id"].startswith("00D") and info["user_id"].startswith("005")
    ident = requests.get(body["id"], headers=h, timeout=10).json()
    assert ident["username"] == ADMIN[0] and ident["urls"]["rest"].endswith("/services/data/v{version}/".replace(
        "{version}", "62.0"))
    # OpenID Connect discovery and an RS256 id_token verifiable with the published key
    conf = requests.get(f"{emu.base_url}/.well-known/openid-configuration", timeout=10).json()
    assert conf["issuer"] == emu.base_url and conf["id_token_signing_alg_values_supported"] == ["RS256"]
    jwks = requests.get(conf["jwks_uri"], timeout=10).json()
    head_b64, claims_b64, sig_b64 = body["id_token"].split(".")

    def dec(s: str) -> bytes:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    header = json.loads(dec(head_b64))
    claims = json.loads(dec(claims_b64))
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    pub = rsa.RSAPublicNumbers(int.from_bytes(dec(key["e"]), "big"), int.from_bytes(dec(key["n"]), "big")).public_key()
    pub.verify(dec(sig_b64), f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
    assert header["alg"] == "RS256"
    assert claims["aud"] == CLIENT_ID and claims["iss"] == emu.base_url and claims["sub"] == body["id"]
    assert claims["nonce"] == "n-123" and claims["exp"] > claims["iat"]


def test_identity_and_userinfo_reject_bad_tokens(emu):
    r = requests.get(f"{emu.base_url}/services/oauth2/userinfo", headers={"Authorization": "Bearer nope"},
                     timeout=10)
    assert r.status_code == 403 and r.text == "Bad_OAuth_Token"
