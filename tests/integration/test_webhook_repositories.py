"""Webhook endpoints and the delivery log behind tenant-scoped repositories: another tenant's endpoint or
delivery is never listed, read or changed, through the repositories or the webhooks service; a delivery
stored twice is reported as already there."""

from __future__ import annotations

import datetime as dt

import pytest

from refstage.domain.audit import Actor
from refstage.domain.errors import NotFound
from refstage.services import tenants, webhooks

AT = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)
ADMIN = Actor.person("u1", "admin@acme.test")


@pytest.fixture
def hooks(rt, world):
    """Tenant A (world) with one endpoint and one delivery to it; tenant B with nothing."""
    with rt.uow(world.tenant.id) as uow:
        endpoint = uow.webhook_endpoints.add("ep-a", url="https://a.example/hook", description="A's",
                                             sealed_secret="sealed-a", events=["referral.captured"], now=AT)
        delivery = uow.webhook_deliveries.add_once("dl-a", endpoint_id="ep-a", event="referral.captured",
                                                   entity_id="ref-a", payload={"id": "dl-a"}, now=AT)
        uow.commit()
    other = tenants.create_tenant(rt, "Other", "other")
    return world.tenant.id, other.id, endpoint, delivery


def _unchanged(rt, tenant_a, endpoint, delivery):
    with rt.uow(tenant_a, readonly=True) as uow:
        assert uow.webhook_endpoints.get("ep-a") == endpoint
        assert uow.webhook_endpoints.sealed_secret("ep-a") == "sealed-a"
        assert uow.webhook_deliveries.get("dl-a") == delivery


def test_another_tenants_endpoint_is_never_visible_or_changed(rt, hooks):
    tenant_a, tenant_b, endpoint, delivery = hooks
    with rt.uow(tenant_b) as uow:
        assert uow.webhook_endpoints.list() == [] and uow.webhook_endpoints.list(active_only=True) == []
        for attempt in (lambda: uow.webhook_endpoints.get("ep-a"),
                        lambda: uow.webhook_endpoints.sealed_secret("ep-a"),
                        lambda: uow.webhook_endpoints.update("ep-a", {"url": "https://b.example/hook", "active": False}, AT),
                        lambda: uow.webhook_endpoints.set_secret("ep-a", "sealed-b", AT),
                        lambda: uow.webhook_endpoints.remove("ep-a")):
            with pytest.raises(NotFound):
                attempt()
        uow.commit()
    _unchanged(rt, tenant_a, endpoint, delivery)
    with rt.uow(tenant_a, readonly=True) as uow:
        assert [e["id"] for e in uow.webhook_endpoints.list(active_only=True)] == ["ep-a"]


def test_another_tenants_delivery_is_never_visible_or_changed(rt, hooks):
    tenant_a, tenant_b, endpoint, delivery = hooks
    with rt.uow(tenant_b) as uow:
        assert uow.webhook_deliveries.list() == []
        assert uow.webhook_deliveries.for_entities("referral.captured") == []
        assert uow.webhook_deliveries.for_entities("referral.captured", ["ref-a"]) == []
        assert uow.webhook_deliveries.claim("dl-a", AT, AT + dt.timedelta(minutes=5)) is False
        for attempt in (lambda: uow.webhook_deliveries.get("dl-a"),
                        lambda: uow.webhook_deliveries.requeue("dl-a", AT),
                        lambda: uow.webhook_deliveries.finish("dl-a", status="failed", status_code=500, error="x",
                                                              delivered_at=None, next_attempt_at=None)):
            with pytest.raises(NotFound):
                attempt()
        uow.commit()
    _unchanged(rt, tenant_a, endpoint, delivery)
    with rt.uow(readonly=True) as uow:  # the sweep is the one cross-tenant reader, and names the tenant
        assert uow.directory.webhooks_due(AT, 10) == [(tenant_a, "dl-a")]


def test_the_webhooks_service_gives_another_tenant_404_and_changes_nothing(rt, hooks):
    tenant_a, tenant_b, endpoint, delivery = hooks
    assert webhooks.list_endpoints(rt, tenant_b) == [] and webhooks.list_deliveries(rt, tenant_b) == []
    assert webhooks.payout_requests(rt, tenant_b) == {}
    for attempt in (lambda: webhooks.get_endpoint(rt, tenant_b, "ep-a"),
                    lambda: webhooks.update_endpoint(rt, tenant_b, "ep-a", {"active": False}, ADMIN),
                    lambda: webhooks.rotate_secret(rt, tenant_b, "ep-a", ADMIN),
                    lambda: webhooks.delete_endpoint(rt, tenant_b, "ep-a", ADMIN),
                    lambda: webhooks.send_test_event(rt, tenant_b, "ep-a", ADMIN),
                    lambda: webhooks.get_delivery(rt, tenant_b, "dl-a"),
                    lambda: webhooks.redeliver(rt, tenant_b, "dl-a", ADMIN),
                    lambda: webhooks.deliver(rt, tenant_b, "dl-a")):
        with pytest.raises(NotFound):
            attempt()
    _unchanged(rt, tenant_a, endpoint, delivery)
    assert [name for name, _ in rt.jobs.jobs if name == "deliver_webhook"] == []
    with rt.uow(tenant_a, readonly=True) as uow:
        assert uow.webhook_deliveries.list() == [delivery]


def test_a_delivery_stored_twice_is_already_there(rt, hooks):
    tenant_a, _, _, delivery = hooks
    with rt.uow(tenant_a) as uow:
        again = uow.webhook_deliveries.add_once("dl-a2", endpoint_id="ep-a", event="referral.captured",
                                                entity_id="ref-a", payload={"id": "dl-a2"}, now=AT)
        # The transaction goes on: what the savepoint did not store does not spoil the rest.
        other = uow.webhook_deliveries.add_once("dl-a3", endpoint_id="ep-a", event="referral.captured",
                                                entity_id="ref-b", payload={"id": "dl-a3"}, now=AT)
        uow.commit()
    assert again is None and other["id"] == "dl-a3" and other["status"] == "pending"
    with rt.uow(tenant_a, readonly=True) as uow:
        assert [d["id"] for d in uow.webhook_deliveries.for_entities("referral.captured", ["ref-a"])] == [delivery["id"]]
