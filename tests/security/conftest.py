"""Fixtures for the attack replays: the admin console's people and world, API keys, and a count of
every row the app keeps, to assert that a refused attack changed nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from refstage.adapters.db import models as m
from refstage.domain.audit import Actor
from refstage.services import tenants
from tests.admin.conftest import admin_client, people  # noqa: F401 - fixtures reused
from tests.integration.conftest import fake_crm, world  # noqa: F401 - fixtures reused


@pytest.fixture
def api_key(rt, world):
    return tenants.create_api_key(rt, world.tenant.id, "security tests", Actor.system())


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


COUNTED = ("ProgramRow", "AdvocateRow", "ReferralRow", "RewardRow", "ReferralIntakeRow", "CrmEventRow", "AuditRow")


def row_counts(rt) -> dict[str, int]:
    """How many rows each business table holds (rate-limit counters and logs excluded)."""
    out = {}
    with rt.session_factory() as session:
        for name in COUNTED:
            model = getattr(m, name, None)
            if model is not None:
                out[name] = session.scalar(select(func.count()).select_from(model))
    return out
