"""Finding 1: account takeover through "Sign in with Salesforce". An attacker runs an OpenID provider
on a host with a trusted certificate, posts its URL as the login host, and signs tokens claiming the
org id / user id an admin linked for SSO. Refstage must refuse the host before contacting it (so the
client secret never reaches it), and nobody is signed in.

A second attack keeps the login host on the allow-list but lets the discovery document send the token
exchange and the key download to another host: refused too, before the secret leaves."""

from __future__ import annotations

import dataclasses

import pytest

from refstage.services import tenants
from tests.security.support_identity import FakeIdentityProvider, csrf, follow_authorize, side_effects

CLIENT_ID, CLIENT_SECRET = "refstage-platform-app", "platform-client-secret-7f3a"
VICTIM_ORG, VICTIM_USER = "00D000000000001AAA", "005000000000001AAA"


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, extra={"salesforce_client_id": CLIENT_ID, "salesforce_client_secret": CLIENT_SECRET})


@pytest.fixture
def victim(rt):
    tenant = tenants.create_tenant(rt, "Victim Co", "victim")
    return tenants.add_user(rt, tenant.id, "admin@victim.test", "admin", None, "Victim Admin", (VICTIM_ORG, VICTIM_USER))


@pytest.fixture
def idp(tmp_path, monkeypatch):
    with FakeIdentityProvider(tmp_path / "attacker-certs", org_id=VICTIM_ORG, user_id=VICTIM_USER, client_id=CLIENT_ID) as fake:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.certs.ca))  # "a host with a trusted certificate"
        yield fake


def _attack(client, idp, login_host: str):
    """Everything the attacker does: start the sign-in at their host, approve, come back."""
    started = client.post("/admin/login/salesforce", data={"login_host": login_host, "csrf_token": csrf(client)})
    if started.status_code == 302 and started.headers["Location"].startswith(idp.base_url):
        query = follow_authorize(started.headers["Location"], str(idp.certs.ca))
        client.get("/admin/login/salesforce/callback", query_string=query)
    return started


def _signed_in(client) -> bool:
    with client.session_transaction() as s:
        return "admin_user_id" in s


def test_an_attackers_identity_provider_cannot_sign_in_as_a_linked_admin(client, rt, victim, idp):
    before = side_effects(rt)
    started = _attack(client, idp, idp.base_url)
    assert started.status_code == 400 and "not a Salesforce host" in started.get_data(as_text=True)
    assert not _signed_in(client)
    assert client.get("/admin/users").status_code == 302  # still sent to the sign-in page
    assert idp.requests == []  # not even the discovery document was fetched
    assert not idp.secret_seen(CLIENT_SECRET)
    assert side_effects(rt) == before


def test_discovery_cannot_send_the_token_exchange_or_the_keys_elsewhere(client, rt, victim, tmp_path, monkeypatch):
    """Both hosts are trusted here (loopback allowed, as in development): the discovery document of the
    chosen one must still keep every endpoint, and the issuer, on its own origin."""
    rt.settings = dataclasses.replace(rt.settings, allow_loopback_crm_hosts=True)
    with FakeIdentityProvider(tmp_path / "a", org_id=VICTIM_ORG, user_id=VICTIM_USER, client_id=CLIENT_ID) as chosen, \
            FakeIdentityProvider(tmp_path / "a", org_id=VICTIM_ORG, user_id=VICTIM_USER, client_id=CLIENT_ID) as elsewhere:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(chosen.certs.ca))
        chosen.overrides = {"token_endpoint": f"{elsewhere.base_url}/services/oauth2/token",
                            "jwks_uri": f"{elsewhere.base_url}/id/keys"}
        before = side_effects(rt)
        started = _attack(client, chosen, chosen.base_url)
        assert started.status_code == 400 and "points elsewhere" in started.get_data(as_text=True)
        assert elsewhere.requests == [] and not elsewhere.secret_seen(CLIENT_SECRET)
        assert not chosen.secret_seen(CLIENT_SECRET)
        assert not _signed_in(client)
        assert side_effects(rt) == before
