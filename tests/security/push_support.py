"""Shared by the push-path security tests (tests/security/test_push_*.py): an emulated Salesforce org
over HTTPS, a connected tenant with a live program and one routed referral, forged envelopes, and a
snapshot of everything a push could change."""

from __future__ import annotations

from sqlalchemy import func, select

from refstage.adapters.db import models as m
from tests.salesforce.conftest import emu, settings, sf_emulator  # noqa: F401 - the emulated org fixtures, re-exported

FAST = {"retry_backoff_seconds": 0.01, "bulk_poll_seconds": 0.05}


def envelope(org_id: str, notifications: list[tuple[str, str, dict]], first_id: int = 1) -> bytes:
    """A SOAP `notifications` envelope as Salesforce posts it: [(sObject type, record Id, {field: value})]."""
    parts = []
    for n, (obj, record_id, fields) in enumerate(notifications, start=first_id):
        values = "".join(f"<sf:{k}>{v}</sf:{k}>" for k, v in {"Id": record_id, **fields}.items())
        parts.append(f'<Notification><Id>04l{n:015d}</Id><sObject xsi:type="sf:{obj}" '
                     f'xmlns:sf="urn:sobject.enterprise.soap.sforce.com">{values}</sObject></Notification>')
    return ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
            '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
            f'<OrganizationId>{org_id}</OrganizationId><ActionId>04k000000000001AAA</ActionId>'
            '<SessionId xsi:nil="true"/>' + "".join(parts) + "</notifications></soapenv:Body></soapenv:Envelope>").encode()


def money_state(rt, tenant_id: str) -> dict:
    """Referrals (status and CRM links), rewards, and the record states kept for the rules."""
    with rt.uow(tenant_id) as uow:
        refs = uow.referrals.list(limit=500)
        rewards = uow.rewards.for_referrals([r.id for r in refs])
        records = uow.session.execute(select(m.CrmRecordRow.object_name, m.CrmRecordRow.crm_id, m.CrmRecordRow.modified_at)
                                      .where(m.CrmRecordRow.tenant_id == tenant_id)).all()
    return {
        "referrals": {r.id: (r.status.value, r.crm.lead_id, r.crm.opportunity_id, r.qualified_at) for r in refs},
        "rewards": {r.id: [(w.rule_key, w.status.value, str(w.amount)) for w in rewards.get(r.id, [])] for r in refs},
        "records": sorted((o, i, str(t)) for o, i, t in records),
    }


def reward_count(rt) -> int:
    with rt.session_factory() as s:
        return int(s.scalar(select(func.count()).select_from(m.RewardRow)))


def inbox_count(rt) -> int:
    with rt.session_factory() as s:
        return int(s.scalar(select(func.count()).select_from(m.CrmEventRow)))
