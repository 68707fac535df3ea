import pytest

from refstage.domain.audit import Actor, ActorKind
from refstage.domain.connections import ConnectionStatus, CrmConnection, CrmKind
from refstage.services import programs, tenants
from tests.fakes import FakeCrm

ADMIN = Actor(ActorKind.PERSON, "u1", "admin@acme.test")

PROGRAM = {
    "name": "Customers", "slug": "customers", "enrolment": {"kind": "salesforce_contacts"},
    "rule": "Opportunity.StageName == 'Closed Won' AND Opportunity.Amount >= 5000",
    "reward_rules": [
        {"key": "adv", "recipient": "advocate", "kind": "fixed", "amount": {"amount": "100", "currency": "USD"}},
        {"key": "friend", "recipient": "friend", "kind": "fixed", "amount": {"amount": "50", "currency": "USD"}},
    ],
    "owner": {"name": "Riley", "email": "riley@acme.test"},
    "routing": {"duplicate_policy": "review"},
}


@pytest.fixture
def fake_crm() -> FakeCrm:
    return FakeCrm()


@pytest.fixture
def world(rt, fake_crm):
    """A tenant with an active (fake) Salesforce connection and a live program."""
    rt.gateway_factory = lambda _rt, _conn: fake_crm
    tenant = tenants.create_tenant(rt, "Acme", "acme")
    conn = CrmConnection(id=rt.new_id(), tenant_id=tenant.id, kind=CrmKind.SALESFORCE, name="Acme org",
                         status=ConnectionStatus.ACTIVE, external_org_id="00D000000000001AAA")
    with rt.uow(tenant.id) as uow:
        uow.connections.add(conn)
        uow.commit()
    program = programs.create_program(rt, tenant.id, {**PROGRAM, "connection_id": conn.id}, ADMIN)
    programs.set_program_status(rt, tenant.id, program.id, "live", ADMIN)

    class World:
        pass

    w = World()
    w.tenant, w.connection, w.program, w.crm = tenant, conn, program, fake_crm
    return w
