"""Sign in with Salesforce (OpenID Connect) against the Salesforce emulator over real HTTPS:
discovery, authorization code with state + nonce + PKCE, RS256 id_token verified against /id/keys,
and the (organization_id, user_id) → user mapping."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from refstage.services import tenants
from refstage.web.admin.auth import OidcError, verify_id_token
from tests.admin.conftest import csrf
from tests.salesforce.helpers import running_org



@pytest.fixture(scope="module")
def sf(tmp_path_factory):
    with running_org(tmp_path_factory.mktemp("admin-oidc-certs"), seed="empty") as emu:
        yield emu


@pytest.fixture
def settings(settings, sf):
    return dataclasses.replace(settings, allow_loopback_crm_hosts=True, extra={"salesforce_client_id": sf.org.client_id, "salesforce_client_secret": sf.org.client_secret,
                                                "salesforce_login_host": sf.base_url})


@pytest.fixture
def identity(sf):
    info = requests.get(sf.base_url + "/_emulator", timeout=10).json()
    return info["organizationId"], info["adminUserId"]


def _authorize_in_browser(sf, authorize_url: str, password: str | None = None) -> str:
    """Do what the person does on Salesforce's pages: log in, then Allow. Returns the redirect back to us."""
    params = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
    s = requests.Session()
    assert s.get(authorize_url, timeout=10).status_code == 200
    login = s.post(sf.base_url + "/services/oauth2/authorize", data={**params, "action": "login", "username": sf.org.admin_username,
                                                                     "pw": password or sf.org.admin_password}, timeout=10)
    assert login.status_code == 200 and "Allow" in login.text
    allow = s.post(sf.base_url + "/services/oauth2/authorize", data={**params, "action": "allow"}, allow_redirects=False, timeout=10)
    assert allow.status_code == 302
    return allow.headers["Location"]


def _start(client, sf):
    client.get("/admin/login")
    resp = client.post("/admin/login/salesforce", data={"login_host": sf.base_url, "csrf_token": csrf(client)})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    url = resp.headers["Location"]
    assert url.startswith(sf.base_url + "/services/oauth2/authorize")
    q = parse_qs(urlsplit(url).query)
    assert q["scope"] == ["openid id"] and q["nonce"][0] and q["state"][0] and q["code_challenge_method"] == ["S256"]
    return url


def _back(client, location: str):
    parts = urlsplit(location)
    assert parts.path == "/admin/login/salesforce/callback"
    return client.get(parts.path + "?" + parts.query)


def test_sign_in_with_salesforce_maps_the_identity_to_a_user(client, rt, sf, identity):
    tenant = tenants.create_tenant(rt, "Acme", "acme")
    user = tenants.add_user(rt, tenant.id, "sfadmin@acme.test", "admin", None, "SF Admin", identity)
    url = _start(client, sf)
    resp = _back(client, _authorize_in_browser(sf, url))
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/admin/")
    with client.session_transaction() as s:
        assert s["admin_user_id"] == user.id and s["admin_tenant_id"] == tenant.id and "_admin_oidc" not in s
    assert client.get("/admin/programs").status_code == 200


def test_unlinked_identity_is_refused(client, rt, sf, identity):
    tenants.create_tenant(rt, "Acme", "acme")
    resp = _back(client, _authorize_in_browser(sf, _start(client, sf)))
    assert resp.status_code == 403 and "no Refstage account is linked" in resp.get_data(as_text=True)
    with client.session_transaction() as s:
        assert "admin_user_id" not in s


def test_state_mismatch_and_replay_are_refused(client, rt, sf, identity):
    tenant = tenants.create_tenant(rt, "Acme", "acme")
    tenants.add_user(rt, tenant.id, "sfadmin@acme.test", "admin", None, "", identity)
    location = _authorize_in_browser(sf, _start(client, sf))
    tampered = location.replace("state=", "state=x")
    assert "state mismatch" in _back(client, tampered).get_data(as_text=True)
    # The pending sign-in is gone after a failure: the genuine answer cannot be replayed either.
    assert "expired" in _back(client, location).get_data(as_text=True)


def test_id_token_checks(sf, identity):
    from refstage_devkit.emulators.salesforce.oauth import b64url  # noqa: F401 - the emulator signs like Salesforce

    oauth = sf.org.oauth
    access = oauth.issue_access(identity[1], sf.org.client_id, "openid id")
    token = oauth.id_token(identity[1], sf.org.client_id, access, "n-1")
    jwks = requests.get(sf.base_url + "/id/keys", timeout=10).json()
    claims = verify_id_token(token, jwks=jwks, issuer=sf.base_url, client_id=sf.org.client_id, nonce="n-1")
    assert (claims["organization_id"], claims["user_id"]) == identity
    for bad in ({"nonce": "other"}, {"client_id": "someone-else"}, {"issuer": "https://login.salesforce.com"}):
        kwargs = {"jwks": jwks, "issuer": sf.base_url, "client_id": sf.org.client_id, "nonce": "n-1", **bad}
        with pytest.raises(OidcError):
            verify_id_token(token, **kwargs)
    head, body, sig = token.split(".")
    with pytest.raises(OidcError):
        verify_id_token(f"{head}.{body}.{sig[:-4]}AAAA", jwks=jwks, issuer=sf.base_url, client_id=sf.org.client_id, nonce="n-1")
    with pytest.raises(OidcError):  # alg=none or a key we do not know
        verify_id_token(token, jwks={"keys": []}, issuer=sf.base_url, client_id=sf.org.client_id, nonce="n-1")


def test_unreachable_provider_is_a_message_not_a_crash(client, sf):
    client.get("/admin/login")
    resp = client.post("/admin/login/salesforce", data={"login_host": "https://127.0.0.1:9", "csrf_token": csrf(client)})
    assert resp.status_code == 400 and "could not be reached" in resp.get_data(as_text=True)
    resp = client.post("/admin/login/salesforce", data={"login_host": "http://plain.test", "csrf_token": csrf(client)})
    assert resp.status_code == 400 and "https" in resp.get_data(as_text=True)
