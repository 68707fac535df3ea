"""Finding 3: SSRF through outbound webhooks, with the response body shown. A webhook URL on loopback
was accepted, `/test` fetched it, and the delivery log showed the internal service's answer. Targets
are now resolved and refused at creation (and on update) when any address is loopback, private,
link-local, multicast, unspecified or a cloud metadata address, IPv4 or IPv6 (mapped forms too); at
send time the host is resolved again, checked, and the connection goes to the address checked (DNS
rebinding). Delivery logs keep a status and a short reason, never the receiver's body."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from refstage.domain.audit import Actor
from refstage.services import tenants, webhooks
from tests.security.support_identity import Listener, side_effects

ACTOR = Actor.system("attacker")


@pytest.fixture
def tenant_key(rt):
    tenant = tenants.create_tenant(rt, "Tenant B", "tenant-b")
    return tenant, tenants.create_api_key(rt, tenant.id, "attacker", ACTOR)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _run_deliveries(rt, tenant_id: str) -> None:
    """The worker's part: every deliver_webhook job the requests queued."""
    for name, kw in list(rt.jobs.jobs):
        if name == "deliver_webhook":
            webhooks.deliver(rt, tenant_id, kw["delivery_id"])


def test_a_webhook_to_an_internal_address_is_refused_and_nothing_is_fetched(client, rt, tenant_key):
    tenant, key = tenant_key
    with Listener() as internal:
        before = side_effects(rt)
        targets = [f"{internal.url}/internal", f"http://localhost:{internal.port}/internal",
                   f"http://[::ffff:127.0.0.1]:{internal.port}/internal", f"http://[::1]:{internal.port}/",
                   "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/latest/meta-data/",
                   "http://10.0.0.7/admin", "http://192.168.1.1/", "http://172.16.0.1/", "http://100.64.0.1/",
                   "http://[fe80::1]/", "http://0.0.0.0:80/", "http://224.0.0.1/", "http://[::]/",
                   "http://[64:ff9b::7f00:1]/", "http://2130706433/"]
        answers = {}
        for url in targets:
            created = client.post("/api/v1/webhooks", json={"url": url}, headers=_auth(key))
            answers[url] = created.status_code
            if created.status_code == 201:  # the attack goes on: ask for a test delivery, read the log
                endpoint_id = created.get_json()["id"]
                client.post(f"/api/v1/webhooks/{endpoint_id}/test", headers=_auth(key))
        _run_deliveries(rt, tenant.id)
        logs = client.get("/api/v1/webhook-deliveries", headers=_auth(key)).get_json()["data"]
        assert answers == {url: 400 for url in targets}
        assert internal.hits == []
        assert not any(Listener.BODY.decode() in str(d.get("last_error")) for d in logs)
        assert side_effects(rt) == before


def test_dns_rebinding_between_creation_and_sending_is_refused(client, rt, tenant_key, monkeypatch):
    """The name resolves to a public address when the endpoint is saved, then to loopback."""
    tenant, key = tenant_key
    real = socket.getaddrinfo
    lookups: list[str] = []
    with Listener() as internal:
        def rebinding(host, port, *args, **kwargs):
            if host != "hooks.rebind.test":
                return real(host, port, *args, **kwargs)
            lookups.append(host)
            address = "93.184.216.34" if len(lookups) == 1 else "127.0.0.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        created = client.post("/api/v1/webhooks", json={"url": f"http://hooks.rebind.test:{internal.port}/internal"},
                              headers=_auth(key))
        assert created.status_code == 201, created.get_json()
        client.post(f"/api/v1/webhooks/{created.get_json()['id']}/test", headers=_auth(key))
        _run_deliveries(rt, tenant.id)
        (delivery,) = client.get("/api/v1/webhook-deliveries", headers=_auth(key)).get_json()["data"]
        assert internal.hits == []
        assert delivery["status"] == "failed" and "loopback" in delivery["last_error"]
        assert len(lookups) == 2  # once when saved, once when sent


def test_the_delivery_log_keeps_a_short_reason_never_the_body(client, rt, tenant_key):
    """Development allowance on (a receiver on this machine): the log says "HTTP 503", nothing more."""
    tenant, key = tenant_key
    rt.settings = dataclasses.replace(rt.settings, allow_private_webhook_targets=True)
    with Listener(status=503) as receiver:
        created = client.post("/api/v1/webhooks", json={"url": f"{receiver.url}/hook"}, headers=_auth(key))
        assert created.status_code == 201
        client.post(f"/api/v1/webhooks/{created.get_json()['id']}/test", headers=_auth(key))
        _run_deliveries(rt, tenant.id)
        (delivery,) = client.get("/api/v1/webhook-deliveries", headers=_auth(key)).get_json()["data"]
    assert len(receiver.hits) == 1
    assert delivery["status"] == "retrying" and delivery["last_error"] == "HTTP 503"


def test_redirects_are_not_followed(rt, tenant_key):
    tenant, _ = tenant_key
    rt.settings = dataclasses.replace(rt.settings, allow_private_webhook_targets=True)
    with Listener() as elsewhere, Listener(status=307, location=f"{elsewhere.url}/internal") as redirector:
        endpoint, _ = webhooks.create_endpoint(rt, tenant.id, f"{redirector.url}/hook", None, ACTOR)
        delivery = webhooks.send_test_event(rt, tenant.id, endpoint["id"], ACTOR)
        outcome = webhooks.deliver(rt, tenant.id, delivery["id"])
    assert len(redirector.hits) == 1 and elsewhere.hits == []
    assert outcome.status == "failed"
    assert "redirects are not followed" in webhooks.get_delivery(rt, tenant.id, delivery["id"])["last_error"]


def test_the_connection_goes_to_the_address_that_was_checked(rt, tenant_key, monkeypatch):
    """One lookup per send: a name that answers differently on a second lookup cannot redirect the POST."""
    from refstage.adapters import outbound

    with Listener(status=204) as receiver:
        answers = iter(["127.0.0.1", "10.255.255.1"])

        def resolver(host, port, *args, **kwargs):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

        result = outbound.post_json(f"http://hooks.pinned.test:{receiver.port}/hook", b"{}", {}, allow_private=True,
                                    resolver=resolver)
    assert result.ok and len(receiver.hits) == 1
    assert receiver.hits[0]["headers"]["Host"] == f"hooks.pinned.test:{receiver.port}"


def test_https_to_the_pinned_address_still_verifies_the_host_name(tmp_path, monkeypatch):
    """Pinning the address must not weaken TLS: the certificate is checked against the URL's host name."""
    from refstage.adapters import outbound
    from tests.security.support_identity import FakeIdentityProvider

    with FakeIdentityProvider(tmp_path / "tls", org_id="00D000000000004AAA", user_id="005000000000004AAA",
                              client_id="x") as receiver:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(receiver.certs.ca))
        port = receiver.server.server_port

        def to_loopback(host, port_, *args, **kwargs):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port_))]

        named = outbound.post_json(f"https://localhost:{port}/hook", b"{}", {}, allow_private=True, resolver=to_loopback)
        other = outbound.post_json(f"https://hooks.pinned.test:{port}/hook", b"{}", {}, allow_private=True, resolver=to_loopback)
    assert named.status_code == 404  # the TLS session with the certificate's name worked (the receiver has no /hook)
    assert other.status_code is None and other.error == "TLS handshake or certificate check failed"
    assert [r["path"] for r in receiver.requests] == ["/hook"]
