"""'Play the rep' (demo only): each referral says what state it is in, a rejected or duplicate one is
never "waiting for the worker", and the page refreshes itself only while the worker has work."""

from __future__ import annotations

import dataclasses

import pytest

from refstage.services import referrals
from refstage.services.referrals import FriendInput
from tests.admin.conftest import qualified_referral, sign_in


@pytest.fixture
def demo_app(rt):
    from refstage.web.app import create_app

    demo_rt = dataclasses.replace(rt, settings=dataclasses.replace(rt.settings, env="demo"))
    return create_app(runtime=demo_rt, test_config={"TESTING": True})


def test_states_and_refresh(demo_app, rt, world, clock, people):
    client = demo_app.test_client()
    assert sign_in(client, "admin@acme.test").status_code == 302
    qualified_referral(rt, world, clock)
    with rt.uow(world.tenant.id) as uow:
        code = uow.advocates.list()[0].code
    waiting = referrals.capture_referral(rt, code, FriendInput("Wes Waiting", "wes@prospect.test", None, None, True))
    page = client.get("/admin/demo").get_data(as_text=True)
    assert '<meta http-equiv="refresh"' in page and "1 referral(s) waiting for the worker" in page
    assert "Waiting for the worker to route it" in page and "Done: qualified" in page
    with rt.uow(world.tenant.id) as uow:
        ref = uow.referrals.get(waiting.id)
        ref.reject(rt.now(), "spam")
        uow.referrals.save(ref)
        uow.commit()
    page = client.get("/admin/demo").get_data(as_text=True)
    assert '<meta http-equiv="refresh"' not in page and "Rejected: spam" in page
    assert "Waiting for the worker" not in page
