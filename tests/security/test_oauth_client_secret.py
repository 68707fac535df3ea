"""Finding 2: any tenant's API key could make Refstage post the platform's Salesforce client secret to
a host of its choosing (`POST /salesforce/connections {"login_host": "https://attacker"}`, then the
callback exchanges the code there). The login host must be refused up front, and a connection row that
already names such a host (written before the allow-list) must never get the secret on refresh or
revoke either."""

from __future__ import annotations

import dataclasses

import pytest

from refstage.domain.audit import Actor
from refstage.domain.connections import ConnectionStatus, CrmConnection, CrmKind
from refstage.services import tenants
from tests.security.support_identity import FakeIdentityProvider, follow_authorize, side_effects

CLIENT_ID, CLIENT_SECRET = "refstage-platform-app", "platform-client-secret-91bd"
ATTACKER = Actor.system("attacker")


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, extra={"salesforce_client_id": CLIENT_ID, "salesforce_client_secret": CLIENT_SECRET})


@pytest.fixture
def idp(tmp_path, monkeypatch):
    with FakeIdentityProvider(tmp_path / "attacker-certs", org_id="00D000000000002AAA", user_id="005000000000002AAA",
                              client_id=CLIENT_ID) as fake:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.certs.ca))
        yield fake


def test_an_api_key_cannot_send_the_client_secret_to_its_own_host(client, rt, idp):
    tenant = tenants.create_tenant(rt, "Tenant B", "tenant-b")
    key = tenants.create_api_key(rt, tenant.id, "attacker", ATTACKER)
    before = side_effects(rt)
    started = client.post("/salesforce/connections", json={"login_host": idp.base_url},
                          headers={"Authorization": f"Bearer {key}"})
    authorize_url = (started.get_json() or {}).get("authorize_url", "")
    if authorize_url.startswith(idp.base_url):  # the attack goes on as far as the app lets it
        client.get("/salesforce/oauth/callback", query_string=follow_authorize(authorize_url, str(idp.certs.ca)))
    assert started.status_code == 400 and "login_host" in started.get_json()["error"]["fields"]
    assert idp.requests == [] and not idp.secret_seen(CLIENT_SECRET)
    assert side_effects(rt) == before


def test_a_stored_connection_naming_another_host_never_gets_the_secret(rt, idp):
    from refstage.adapters.crm.salesforce.auth import TokenKeeper
    from refstage.services import connections
    from refstage.services.ports import CrmError

    tenant = tenants.create_tenant(rt, "Tenant B", "tenant-b")
    with rt.uow(tenant.id) as uow:  # a row from before the allow-list, pointing at the attacker
        conn = uow.connections.add(CrmConnection(id=rt.new_id(), tenant_id=tenant.id, kind=CrmKind.SALESFORCE, name="old",
                                                 status=ConnectionStatus.ACTIVE, login_host=idp.base_url,
                                                 instance_url=idp.base_url))
        uow.connections.store_credentials(conn.id, rt.vault.seal({"access_token": "stale", "refresh_token": "r-1",
                                                                  "instance_url": idp.base_url}))
        uow.commit()
    with pytest.raises(CrmError):
        TokenKeeper(rt, conn).refresh("stale")
    connections.disconnect(rt, tenant.id, conn.id, actor=ATTACKER)  # revoking is skipped, the tokens forgotten
    assert not idp.secret_seen(CLIENT_SECRET) and idp.requests == []


def test_a_stored_instance_url_elsewhere_gets_no_access_token(rt, idp):
    from refstage.adapters.crm.salesforce.auth import TokenKeeper
    from refstage.services.ports import CrmError

    tenant = tenants.create_tenant(rt, "Tenant B", "tenant-b")
    with rt.uow(tenant.id) as uow:
        conn = uow.connections.add(CrmConnection(id=rt.new_id(), tenant_id=tenant.id, kind=CrmKind.SALESFORCE, name="old",
                                                 status=ConnectionStatus.ACTIVE, login_host="https://login.salesforce.com",
                                                 instance_url=idp.base_url))
        uow.connections.store_credentials(conn.id, rt.vault.seal({"access_token": "a-1", "instance_url": idp.base_url}))
        uow.commit()
    with pytest.raises(CrmError, match="allow-listed"):
        TokenKeeper(rt, conn)
    assert idp.requests == []
