"""End to end over HTTPS against the Pipedrive emulator: connect, enrol, refer, move the deal,
webhook → process_events → qualified → rewards once → status written back into deal fields."""

from __future__ import annotations

import pytest

from refstage.domain.referrals import ReferralStatus
from refstage.services import enrolment, programs, referrals
from refstage.services.ports import CrmError
from refstage.services.referrals import FriendInput
from tests.pipedrive.conftest import ADMIN, final_state, program_data, run_sync

S = ReferralStatus


def _settings(rt, w) -> dict:
    with rt.uow(w.tenant.id) as uow:
        return uow.connections.get(w.connection.id).settings


def _enrol(rt, w):
    progress = enrolment.run_enrolment(rt, w.tenant.id, w.program.id)
    with rt.uow(w.tenant.id) as uow:
        advocates = uow.advocates.list(program_id=w.program.id, limit=500)
    return progress, advocates


def _refer(rt, code, email, name="Fred Friend", company="Prospect GmbH"):
    return referrals.capture_referral(rt, code, FriendInput(name, email, company, None, True))


def test_connect_provisions_fields_and_webhook(pd_rt, connected, api, emu):
    s = _settings(pd_rt, connected)
    assert s["webhook_id"] and s["webhook_url"].endswith(f"/webhooks/pipedrive/{connected.connection.id}")
    assert set(s["fields"]["person"]) == {"code", "link", "referral_id", "advocate_id"}
    assert all(len(k) == 40 for k in s["fields"]["deal"].values())
    hooks = api("GET", "v1/webhooks")
    assert [h["version"] for h in hooks] == ["2.0"] and hooks[0]["http_auth_user"]
    with pd_rt.uow(connected.tenant.id) as uow:
        sealed = uow.connections.credentials(connected.connection.id)
    assert emu.api_token not in sealed  # encrypted at rest
    assert pd_rt.vault.open(sealed)["api_token"] == emu.api_token
    # Provisioning again finds our fields by name and replaces its own webhook: nothing doubles.
    from refstage.services import pipedrive_connect

    pipedrive_connect.provision(pd_rt, connected.tenant.id, connected.connection.id)
    names = [f["name"] for f in api("GET", "v1/personFields", params={"limit": 500})]
    assert names.count("Refstage referral code") == 1
    assert len(api("GET", "v1/webhooks")) == 1


def test_program_editor_milestones_are_the_real_pipelines(pd_rt, connected):
    gateway = pd_rt.gateway(connected.connection)
    milestones = gateway.describe_milestones()
    stages = [(m.group, m.value, m.label) for m in milestones if m.field == "stage_id"]
    assert ("Referrals", 4, "Proposal Made") in stages and ("Partnerships", 6, stages[5][2]) in stages
    assert [m.value for m in milestones if m.is_won] == ["won"]


def test_full_journey_rewards_once_and_writes_back(pd_rt, connected, api, control, jobs):
    w = connected
    progress, advocates = _enrol(pd_rt, w)
    assert progress.enrolled == 8 and progress.links_written == 8
    s = _settings(pd_rt, w)
    ada = advocates[0]
    person = api("GET", f"v2/persons/{ada.crm_id}")
    assert person["custom_fields"][s["fields"]["person"]["code"]] == ada.code
    assert person["custom_fields"][s["fields"]["person"]["link"]].endswith(ada.code)
    # Enrolment again: incremental, nothing new.
    again, _ = _enrol(pd_rt, w)
    assert again.enrolled == 0

    ref = _refer(pd_rt, ada.code, "fred@prospect.test")
    jobs()
    routed = referrals.get_referral(pd_rt, w.tenant.id, ref.id)
    assert routed.status in (S.ROUTED, S.IN_PROGRESS) and routed.crm.deal_id and routed.crm.person_id
    deal = api("GET", f"v2/deals/{routed.crm.deal_id}")
    assert (deal["pipeline_id"], deal["stage_id"], deal["owner_id"], deal["person_id"]) == (1, 2, 2, int(routed.crm.person_id))
    assert deal["custom_fields"][s["fields"]["deal"]["referral_id"]] == ref.id
    notes = api("GET", "v1/notes", params={"deal_id": deal["id"]})
    assert len(notes) == 1 and ada.name in notes[0]["content"]

    control.wait()
    jobs()
    control("POST", f"deals/{deal['id']}/move", {"stage_id": 4})
    control.wait()
    jobs()  # webhook → inbox → process_events → observe → write_back
    got = referrals.get_referral(pd_rt, w.tenant.id, ref.id)
    assert got.status == S.QUALIFIED
    state = final_state(pd_rt, w.tenant.id)
    assert state["fred@prospect.test"][2] == [("adv", "approved"), ("friend", "approved")]
    deal = api("GET", f"v2/deals/{deal['id']}")
    assert deal["custom_fields"][s["fields"]["deal"]["referral_status"]] == "qualified"
    assert "adv (advocate): approved 100" in deal["custom_fields"][s["fields"]["deal"]["reward_status"]]
    # Winning the deal later, and a full polling pass, create nothing more.
    control("POST", f"deals/{deal['id']}/win", {})
    control.wait()
    jobs()
    run_sync(pd_rt, w)
    assert final_state(pd_rt, w.tenant.id) == state


def test_existing_person_is_found_and_attached(pd_rt, connected, api, jobs):
    w = connected
    programs.update_program(pd_rt, w.tenant.id, w.program.id, {"routing": {**program_data(w.connection.id)["routing"],
                                                                            "duplicate_policy": "attach"}}, ADMIN)
    _, advocates = _enrol(pd_rt, w)
    person = api("POST", "v2/persons", json={"name": "Known Person", "emails": [{"value": "known@prospect.test", "primary": True, "label": "work"}]})
    ref = _refer(pd_rt, advocates[0].code, "known@prospect.test")
    jobs()
    got = referrals.get_referral(pd_rt, w.tenant.id, ref.id)
    assert got.status in (S.ROUTED, S.IN_PROGRESS) and got.crm.person_id == str(person["id"])
    assert any(f["reason"] == "duplicate_existing_record" for f in [f.to_dict() for f in got.flags])
    assert len(api("GET", "v2/deals", params={"person_id": person["id"]})) == 1


def test_review_policy_holds_a_real_duplicate(pd_rt, connected, api, jobs):
    w = connected
    _, advocates = _enrol(pd_rt, w)
    api("POST", "v2/persons", json={"name": "Known", "emails": [{"value": "dupe@prospect.test", "primary": True, "label": "work"}]})
    ref = _refer(pd_rt, advocates[0].code, "dupe@prospect.test")
    jobs()
    assert referrals.get_referral(pd_rt, w.tenant.id, ref.id).status == S.DUPLICATE


def test_retried_routing_creates_the_deal_once(pd_rt, connected, api, jobs, monkeypatch):
    """The job fails after the person and the deal exist (the note call fails); the retry finds both:
    no duplicate flag for our own person, no second deal."""
    w = connected
    _, advocates = _enrol(pd_rt, w)
    ref = _refer(pd_rt, advocates[0].code, "retry@prospect.test")
    factory = pd_rt.gateway_factory
    failures = {"left": 1}

    def failing_factory(runtime, connection):
        gateway = factory(runtime, connection)
        post = gateway.client.post

        def flaky(version, path, body):
            if path == "notes" and failures["left"]:
                failures["left"] -= 1
                raise CrmError("Pipedrive POST notes: Service unavailable", transient=True, status=503)
            return post(version, path, body)

        gateway.client.post = flaky
        return gateway

    pd_rt.gateway_factory = failing_factory
    with pytest.raises(CrmError):
        referrals.route_referral(pd_rt, w.tenant.id, ref.id)
    assert referrals.get_referral(pd_rt, w.tenant.id, ref.id).status == S.CAPTURED
    assert referrals.route_referral(pd_rt, w.tenant.id, ref.id) == S.ROUTED
    assert referrals.route_referral(pd_rt, w.tenant.id, ref.id) == S.ROUTED  # replayed job
    got = referrals.get_referral(pd_rt, w.tenant.id, ref.id)
    persons = api("GET", "v2/persons/search", params={"term": "retry@prospect.test", "fields": "email", "exact_match": "true"})
    assert len(persons["items"]) == 1
    deals = api("GET", "v2/deals", params={"person_id": int(got.crm.person_id)})
    assert [d["id"] for d in deals] == [int(got.crm.deal_id)]
    assert len(api("GET", "v1/notes", params={"deal_id": int(got.crm.deal_id)})) == 1


def test_enrolment_filters_by_owner_and_custom_field(pd_rt, connected, api):
    w = connected
    persons = api("GET", "v2/persons", params={"limit": 100})
    owner = persons[0]["owner_id"]
    expected = {str(p["id"]) for p in persons if p["owner_id"] == owner}
    programs.update_program(pd_rt, w.tenant.id, w.program.id, {"enrolment": {
        "kind": "pipedrive_persons", "conditions": [{"field": "owner_id", "op": "equals", "value": owner}]}}, ADMIN)
    _, advocates = _enrol(pd_rt, w)
    assert {a.crm_id for a in advocates} == expected
    # A custom field by its readable name ("Customer tier" → customer_tier), enum compared by label.
    gateway = pd_rt.gateway(w.connection)
    tiers = [f for f in api("GET", "v1/personFields", params={"limit": 500}) if f["name"] == "Customer tier"][0]
    gold = tiers["options"][0]
    target = persons[-1]
    api("PATCH", f"v2/persons/{target['id']}", json={"custom_fields": {tiers["key"]: gold["id"]}})
    from refstage.domain.programs import EnrolmentSource

    source = EnrolmentSource.from_dict({"kind": "pipedrive_persons", "conditions": [
        {"field": "customer_tier", "op": "equals", "value": gold["label"]}]})
    gateway.prepare()
    found = [c.crm_id for c in gateway.iter_enrolment_candidates(source, None)]
    assert str(target["id"]) in found
    assert all(api("GET", f"v2/persons/{pid}")["custom_fields"][tiers["key"]] == gold["id"] for pid in found)


def test_count_matching_previews_the_rule(pd_rt, connected, api):
    from refstage.domain.rules import Rule

    gateway = pd_rt.gateway(connected.connection)
    open_deals = api("GET", "v2/deals", params={"status": "open", "limit": 500})
    expected = sum(1 for d in open_deals if d["stage_id"] == 4)
    assert gateway.count_matching(Rule.parse("Deal.stage_id == 4")) == expected
    assert gateway.count_matching(Rule.parse("Opportunity.IsWon == true")) is None
