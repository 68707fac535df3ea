"""Fast bulk set-up of benchmark data straight into the database (set-up is not what we measure)."""

from __future__ import annotations

import datetime as dt
import uuid

from refstage.adapters.db import models as m
from refstage.domain.audit import Actor
from refstage.domain.connections import ConnectionStatus, CrmConnection, CrmKind
from refstage.domain.programs import ProgramStatus
from refstage.services import programs, tenants

PROGRAM = {
    "name": "Bench", "slug": "bench", "enrolment": {"kind": "salesforce_contacts"},
    "rule": "Opportunity.StageName == 'Closed Won' AND Opportunity.Amount >= 5000",
    "reward_rules": [
        {"key": "adv", "recipient": "advocate", "kind": "fixed", "amount": {"amount": "100", "currency": "USD"}},
        {"key": "friend", "recipient": "friend", "kind": "fixed", "amount": {"amount": "50", "currency": "USD"}},
    ],
    "owner": {"name": "Bench", "email": "bench@example.test"},
}
# The same program on a Pipedrive company: a referral counts once its deal is won.
PIPEDRIVE_PROGRAM = {
    **PROGRAM, "enrolment": {"kind": "pipedrive_persons", "conditions": []}, "rule": "Deal is_won",
    "reward_rules": [{**rule, "amount": {**rule["amount"], "currency": "EUR"}} for rule in PROGRAM["reward_rules"]],
    "routing": {"duplicate_policy": "review", "pipeline_id": 1, "stage_id": 1, "deal_owner_id": 1},
}


def tenant_with_connection(rt, kind: str = "salesforce", **conn_fields):
    tenant = tenants.create_tenant(rt, f"Bench {uuid.uuid4().hex[:6]}", f"bench-{uuid.uuid4().hex[:8]}")
    conn = CrmConnection(id=rt.new_id(), tenant_id=tenant.id, kind=CrmKind(kind), name="bench",
                         status=ConnectionStatus.ACTIVE, **conn_fields)
    with rt.uow(tenant.id) as uow:
        uow.connections.add(conn)
        uow.commit()
    program = programs.create_program(rt, tenant.id, {**PROGRAM, "connection_id": conn.id}, Actor.system("bench"))
    # Live without the rule's check against the CRM: this connection has no org behind it.
    with rt.uow(tenant.id) as uow:
        program = uow.programs.get(program.id)
        program.set_status(ProgramStatus.LIVE, rt.now())
        uow.programs.save(program)
        uow.commit()
    return tenant, conn, program


def linked_referrals(rt, tenant_id: str, connection_id: str, program_id: str, opportunity_ids: list[str],
                     advocates: int = 1000, link_column: str = "opportunity_id") -> list[str]:
    """Routed referrals, one per CRM record id (a Salesforce opportunity; a Pipedrive deal with
    link_column="deal_id"), spread over `advocates` advocates."""
    now = dt.datetime.now(dt.timezone.utc)
    adv_rows, ref_rows = [], []
    adv_ids = [str(uuid.uuid4()) for _ in range(advocates)]
    for i, adv_id in enumerate(adv_ids):
        adv_rows.append({"id": adv_id, "tenant_id": tenant_id, "program_id": program_id, "name": f"Advocate {i}",
                         "email": f"advocate{i}@customer.test", "code": f"B{i:08d}"[:9].replace("0", "2").replace("1", "3"),
                         "source": "api", "enrolled_at": now, "active": True})
    # codes: make them unique and well-formed
    for i, row in enumerate(adv_rows):
        row["code"] = _code(i)
    ref_ids = []
    for i, opp in enumerate(opportunity_ids):
        ref_id = str(uuid.uuid4())
        ref_ids.append(ref_id)
        ref_rows.append({
            "id": ref_id, "version": 1, "tenant_id": tenant_id, "program_id": program_id, "advocate_id": adv_ids[i % advocates],
            "connection_id": connection_id, "friend_name": f"Friend {i}", "friend_email": f"friend{i}@prospect.test",
            "friend_canonical_email": f"friend{i}@prospect.test", "source": "link", "consent_at": now, "consent_version": "1",
            "captured_at": now, "status": "routed", "flags": [], link_column: opp, "routed_at": now, "updated_at": now,
        })
    with rt.session_factory() as session:
        for start in range(0, len(adv_rows), 5000):
            session.execute(m.AdvocateRow.__table__.insert(), adv_rows[start:start + 5000])
        for start in range(0, len(ref_rows), 5000):
            session.execute(m.ReferralRow.__table__.insert(), ref_rows[start:start + 5000])
        session.commit()
    return ref_ids


_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def _code(n: int) -> str:
    digits = []
    for _ in range(9):
        n, rem = divmod(n, len(_ALPHABET))
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits))
