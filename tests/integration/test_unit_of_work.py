"""The unit of work the services type against (services.ports.UnitOfWork), and the repositories that took the
services' last direct database access: each is scoped to its tenant."""

from __future__ import annotations

import datetime as dt
import typing

import pytest

from refstage.domain.errors import NotFound
from refstage.services import ports, tenants

AT = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)


def _other_tenant(rt):
    return tenants.create_tenant(rt, "Other", "other")


def test_the_concrete_unit_of_work_has_everything_the_protocol_names(rt, world):
    names = [n for n in typing.get_type_hints(ports.UnitOfWork) if not n.startswith("_")]
    methods = [n for n, v in vars(ports.UnitOfWork).items() if callable(v) and not n.startswith("_")]
    with rt.uow(world.tenant.id) as uow:
        missing = [n for n in names + methods if not hasattr(uow, n)]
    assert names and methods and missing == []


def test_a_uniqueness_race_at_commit_is_a_storage_conflict(rt, world):
    with rt.uow(world.tenant.id) as uow:
        uow.sync_runs.start("run-1", world.connection.id, "sync", AT)
        uow.commit()
    with rt.uow(world.tenant.id) as uow:
        uow.sync_runs.start("run-1", world.connection.id, "sync", AT)
        with pytest.raises(ports.StorageConflict) as caught:
            uow.commit()
        uow.rollback()
    assert caught.value.detail


def test_sync_state_is_read_and_written_per_tenant(rt, world):
    with rt.uow(world.tenant.id) as uow:
        uow.sync_state.set_watermark(world.connection.id, "enrol:x", AT)
        uow.sync_state.set_checkpoint(world.connection.id, "cursor", {"Opportunity": "abc"}, AT)
        uow.commit()
    with rt.uow(world.tenant.id, readonly=True) as uow:
        assert uow.sync_state.watermark(world.connection.id, "enrol:x").replace(tzinfo=dt.timezone.utc) == AT
        assert uow.sync_state.checkpoint(world.connection.id, "cursor") == {"Opportunity": "abc"}
    other = _other_tenant(rt)
    with rt.uow(other.id, readonly=True) as uow:
        assert uow.sync_state.watermark(world.connection.id, "enrol:x") is None
        assert uow.sync_state.checkpoint(world.connection.id, "cursor") == {}


def test_the_outbox_and_templates_answer_only_their_tenant(rt, world):
    with rt.uow(world.tenant.id) as uow:
        email_id = uow.outbox.add_once("e-1", "referral_captured:k1", event="referral_captured", entity_id="r-1",
                                       program_id=world.program.id, to="ada@customer.test", subject="Hi", body="Body",
                                       now=AT)
        uow.email_templates.put("t-1", world.program.id, "referral_captured", "Subject", "Body", AT)
        uow.commit()
    assert email_id == "e-1"
    other = _other_tenant(rt)
    with rt.uow(other.id) as uow:
        with pytest.raises(NotFound):
            uow.outbox.get("e-1")
        assert uow.outbox.claim("e-1") is False
        assert uow.outbox.list() == []
        assert uow.email_templates.get(world.program.id, "referral_captured") is None
        # The same dedupe key in another tenant hands out nothing of the first tenant's.
        assert uow.outbox.add_once("e-2", "referral_captured:k1", event="referral_captured", entity_id="r-1",
                                   program_id=None, to="x@other.test", subject="s", body="b", now=AT) is None
    with rt.uow(world.tenant.id) as uow:
        assert uow.outbox.add_once("e-3", "referral_captured:k1", event="referral_captured", entity_id="r-1",
                                   program_id=None, to="ada@customer.test", subject="s", body="b", now=AT) == "e-1"
        assert uow.outbox.claim("e-1") is True
        uow.commit()
        assert uow.outbox.get("e-1")["status"] == "sending"
        assert uow.email_templates.get(world.program.id, "referral_captured") == ("Subject", "Body")
