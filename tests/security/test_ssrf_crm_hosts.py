"""Finding 3, second half: the Salesforce login host and the Pipedrive api_domain accepted internal
hosts, so an API key could make Refstage send a CRM token (or the platform's client secret) to an
internal service. Both are allow-listed now: Salesforce's own hosts (plus any an administrator
configures) and *.pipedrive.com; loopback only under the development setting."""

from __future__ import annotations

import pytest

from refstage.domain.audit import Actor
from refstage.services import tenants
from tests.security.support_identity import FakeIdentityProvider, side_effects

ACTOR = Actor.system("attacker")
INTERNAL = ["https://169.254.169.254", "https://10.0.0.7", "https://[::1]:8443", "https://localhost:8443",
            "https://metadata.google.internal", "https://acme.my.salesforce.com.attacker.test",
            "https://login.salesforce.com:8443", "https://evilpipedrive.com", "https://user@acme.pipedrive.com"]


@pytest.fixture
def internal(tmp_path, monkeypatch):
    """An internal HTTPS service with a certificate the machine trusts (127.0.0.1)."""
    with FakeIdentityProvider(tmp_path / "internal-certs", org_id="00D000000000003AAA", user_id="005000000000003AAA",
                              client_id="x") as service:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(service.certs.ca))
        yield service


def test_a_pipedrive_api_domain_on_an_internal_host_gets_no_token(client, rt, internal):
    tenant = tenants.create_tenant(rt, "Tenant B", "tenant-b")
    key = tenants.create_api_key(rt, tenant.id, "attacker", ACTOR)
    before = side_effects(rt)
    answers = {}
    for domain in [internal.base_url, *INTERNAL]:
        resp = client.post("/pipedrive/connections", json={"api_token": "pd-token-123", "api_domain": domain},
                           headers={"Authorization": f"Bearer {key}"})
        answers[domain] = resp.status_code
    assert answers == {domain: 400 for domain in [internal.base_url, *INTERNAL]}
    assert internal.requests == []  # the token never reached the internal service
    assert side_effects(rt) == before


def test_a_salesforce_login_host_on_an_internal_host_is_refused(client, rt, internal, settings):
    rt.settings.extra.update({"salesforce_client_id": "app", "salesforce_client_secret": "platform-secret"})
    tenant = tenants.create_tenant(rt, "Tenant B", "tenant-b")
    key = tenants.create_api_key(rt, tenant.id, "attacker", ACTOR)
    before = side_effects(rt)
    answers = {}
    for host in [internal.base_url, *INTERNAL]:
        resp = client.post("/salesforce/connections", json={"login_host": host}, headers={"Authorization": f"Bearer {key}"})
        answers[host] = resp.status_code
    assert answers == {host: 400 for host in [internal.base_url, *INTERNAL]}
    assert internal.requests == []
    assert side_effects(rt) == before
