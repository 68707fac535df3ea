"""API v2 over real HTTPS; every response is contract-checked by the `api` session."""

from __future__ import annotations

import re



def test_list_deals_envelope_and_headers(api):
    r = api.get("/api/v2/deals")
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True
    assert len(body["data"]) == 6
    assert body["additional_data"] == {"next_cursor": None}
    assert r.headers["x-ratelimit-limit"] == "80"
    assert int(r.headers["x-ratelimit-remaining"]) <= 79
    assert r.headers["x-token-cost"] == "10"


def test_cursor_pagination_walks_everything_once(api, control):
    control.post("/seed", {"persons": 5, "deals": 40})
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 7, "sort_by": "update_time", "sort_direction": "desc"}
        if cursor:
            params["cursor"] = cursor
        body = api.get("/api/v2/deals", params=params).json()
        seen += [d["id"] for d in body["data"]]
        pages += 1
        cursor = body["additional_data"]["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 46 == len(set(seen))
    assert pages == 7


def test_limit_bounds_and_strict_params(api):
    assert len(api.get("/api/v2/deals", params={"limit": 500}).json()["data"]) == 6
    assert api.get("/api/v2/deals", params={"limit": 501}).status_code == 400
    r = api.get("/api/v2/deals", params={"owner_id": "abc"})
    assert r.status_code == 400 and r.json()["success"] is False
    assert api.get("/api/v2/deals", params={"status": "bogus"}).status_code == 400
    assert api.get("/api/v2/deals", params={"cursor": "not-a-cursor"}).status_code == 400


def test_filters(api, control):
    deals = api.get("/api/v2/deals").json()["data"]
    target = deals[0]
    for key in ("owner_id", "person_id", "org_id", "pipeline_id", "stage_id"):
        got = api.get("/api/v2/deals", params={key: target[key]}).json()["data"]
        assert got and all(d[key] == target[key] for d in got)
    control.post(f"/deals/{target['id']}/win")
    won = api.get("/api/v2/deals", params={"status": "won"}).json()["data"]
    assert [d["id"] for d in won] == [target["id"]]
    assert won[0]["won_time"] and won[0]["close_time"]
    opened = api.get("/api/v2/deals", params={"status": "open,lost"}).json()["data"]
    assert target["id"] not in [d["id"] for d in opened]


def test_updated_since_and_until(api, control):
    before = api.get("/api/v2/deals").json()["data"]
    control.post("/clock/advance", {"seconds": 60})
    cutoff = control.get("/info")["clock"]
    moved = before[1]
    control.post(f"/deals/{moved['id']}/move", {"stage_id": 5 if moved["stage_id"] != 5 else 4})
    since = api.get("/api/v2/deals", params={"updated_since": cutoff}).json()["data"]
    assert [d["id"] for d in since] == [moved["id"]]
    assert since[0]["stage_change_time"] == since[0]["update_time"]
    until = api.get("/api/v2/deals", params={"updated_until": cutoff}).json()["data"]
    assert moved["id"] not in [d["id"] for d in until] and len(until) == 5
    assert api.get("/api/v2/deals", params={"updated_since": "yesterday"}).status_code == 400


def test_deal_crud_and_no_coercion(api):
    r = api.post("/api/v2/deals", json={"title": "Referral: Jo", "value": 1200, "currency": "EUR",
                                        "person_id": 1, "stage_id": 3})
    assert r.status_code == 200
    deal = r.json()["data"]
    assert deal["pipeline_id"] == 1 and deal["stage_id"] == 3 and deal["status"] == "open"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", deal["add_time"])
    assert api.post("/api/v2/deals", json={"title": "x", "person_id": "1"}).status_code == 400
    assert api.post("/api/v2/deals", json={"value": 5}).status_code == 400
    assert api.post("/api/v2/deals", json={"title": "x", "stage_id": 999}).status_code == 400
    patched = api.patch(f"/api/v2/deals/{deal['id']}", json={"status": "lost", "lost_reason": "Budget"}).json()["data"]
    assert patched["status"] == "lost" and patched["lost_reason"] == "Budget" and patched["lost_time"]
    assert api.get(f"/api/v2/deals/{deal['id']}").json()["data"]["status"] == "lost"
    assert api.delete(f"/api/v2/deals/{deal['id']}").json() == {"success": True, "data": {"id": deal["id"]}}
    assert deal["id"] not in [d["id"] for d in api.get("/api/v2/deals").json()["data"]]
    deleted = api.get("/api/v2/deals", params={"status": "deleted"}).json()["data"]
    assert [d["id"] for d in deleted] == [deal["id"]] and deleted[0]["is_deleted"] is True
    assert api.get("/api/v2/deals/99999").status_code == 404
    assert api.patch("/api/v2/deals/99999", json={"title": "x"}).status_code == 404


def test_custom_fields_nested_by_hash(api):
    key = api.post("/api/v1/dealFields", json={"name": "Referral code", "field_type": "varchar"}).json()["data"]["key"]
    money = api.post("/api/v1/dealFields", json={"name": "Reward", "field_type": "monetary"}).json()["data"]["key"]
    assert re.fullmatch(r"[0-9a-f]{40}", key)
    deal = api.post("/api/v2/deals", json={"title": "With fields", "custom_fields": {
        key: "ADA-42", money: {"value": 2300, "currency": "EUR"}}}).json()["data"]
    assert deal["custom_fields"][key] == "ADA-42"
    assert deal["custom_fields"][money] == {"value": 2300, "currency": "EUR"}
    other = api.get("/api/v2/deals/1").json()["data"]
    assert other["custom_fields"][key] is None
    assert api.patch(f"/api/v2/deals/{deal['id']}", json={"custom_fields": {key: 5}}).status_code == 400
    assert api.patch(f"/api/v2/deals/{deal['id']}", json={"custom_fields": {"0" * 40: "x"}}).status_code == 400
    assert api.patch(f"/api/v2/deals/{deal['id']}", json={"custom_fields": {key: "ADA-43"}}).json()["data"]["custom_fields"][key] == "ADA-43"


def test_persons_crud_and_exact_email_search(api):
    r = api.post("/api/v2/persons", json={"name": "Jo Friend", "emails": [
        {"value": "jo.friend@example.org", "primary": True, "label": "work"}], "org_id": 1})
    person = r.json()["data"]
    assert person["emails"] == [{"value": "jo.friend@example.org", "primary": True, "label": "work"}]
    assert person["first_name"] == "Jo" and person["last_name"] == "Friend"
    params = {"term": "jo.friend@example.org", "fields": "email", "exact_match": "true"}
    found = api.get("/api/v2/persons/search", params=params).json()
    assert [i["item"]["id"] for i in found["data"]["items"]] == [person["id"]]
    item = found["data"]["items"][0]["item"]
    assert item["emails"] == ["jo.friend@example.org"] and item["organization"]["id"] == 1
    assert api.get("/api/v2/persons/search", params=dict(params, term="jo.friend@example.or")).json()["data"]["items"] == []
    assert api.get("/api/v2/persons/search", params={"term": "x"}).status_code == 400
    patched = api.patch(f"/api/v2/persons/{person['id']}", json={"name": "Jo F. Friend"}).json()["data"]
    assert patched["name"] == "Jo F. Friend"
    assert api.get(f"/api/v2/persons/{person['id']}").json()["data"]["name"] == "Jo F. Friend"
    assert api.delete(f"/api/v2/persons/{person['id']}").status_code == 200
    assert api.get(f"/api/v2/persons/{person['id']}").status_code == 404
    assert api.get("/api/v2/persons/search", params=params).json()["data"]["items"] == []
    assert api.post("/api/v2/persons", json={"emails": [{"value": "a@b.c"}]}).status_code == 400


def test_persons_list_filters(api):
    persons = api.get("/api/v2/persons", params={"limit": 3}).json()
    assert len(persons["data"]) == 3 and persons["additional_data"]["next_cursor"]
    org = api.get("/api/v2/persons", params={"org_id": 2}).json()["data"]
    assert all(p["org_id"] == 2 for p in org)


def test_organizations_pipelines_stages(api):
    org = api.post("/api/v2/organizations", json={"name": "Umbrella"}).json()["data"]
    assert api.get(f"/api/v2/organizations/{org['id']}").json()["data"]["name"] == "Umbrella"
    assert api.patch(f"/api/v2/organizations/{org['id']}", json={"name": "Umbrella Corp"}).json()["data"]["name"] == "Umbrella Corp"
    assert len(api.get("/api/v2/organizations").json()["data"]) == 4
    pipelines = api.get("/api/v2/pipelines").json()["data"]
    assert [p["name"] for p in pipelines] == ["Referrals", "Partnerships"]
    stages = api.get("/api/v2/stages", params={"pipeline_id": 1, "sort_by": "order_nr"}).json()["data"]
    assert [s["order_nr"] for s in stages] == [1, 2, 3, 4, 5]
    assert all(s["pipeline_id"] == 1 for s in stages)
    assert api.get("/api/v2/stages/1").json()["data"]["name"] == "Lead In"
    assert api.get("/api/v2/pipelines/2").json()["data"]["name"] == "Partnerships"
    assert api.get("/api/v2/pipelines/9").status_code == 404


def test_authentication(anon, emu):
    r = anon.get("/api/v2/deals")
    assert r.status_code == 401 and r.json()["success"] is False
    assert anon.get("/api/v2/deals", headers={"x-api-token": "nope"}).status_code == 401
    assert anon.get("/api/v2/deals", params={"api_token": emu.api_token}).status_code == 200
    assert anon.get("/api/v2/nothing-here", params={"api_token": emu.api_token}).status_code == 404


def test_empty_seed(cert_dir, session_for):
    from refstage_devkit.emulators.pipedrive.server import PipedriveEmulator

    with PipedriveEmulator(port=0, seed="empty", cert_dir=cert_dir) as emu:
        s = session_for(emu, emu.api_token)
        assert s.get("/api/v2/deals").json()["data"] == []
        assert len(s.get("/api/v2/stages").json()["data"]) == 5


def test_pipeline_change_places_deal_in_first_stage(api):
    deal = api.get("/api/v2/deals/1").json()["data"]
    same = api.patch("/api/v2/deals/1", json={"pipeline_id": deal["pipeline_id"]}).json()["data"]
    assert same["stage_id"] == deal["stage_id"]
    moved = api.patch("/api/v2/deals/1", json={"pipeline_id": 2}).json()["data"]
    assert moved["pipeline_id"] == 2 and moved["stage_id"] == 6
    assert api.patch("/api/v2/deals/1", json={"pipeline_id": 1, "stage_id": 7}).status_code == 400


def test_non_ascii_email_exact_search(api):
    person = api.post("/api/v2/persons", json={"name": "Zoë Çelik", "emails": [{"value": "zoë@exämple.org", "label": "home"}]}).json()["data"]
    found = api.get("/api/v2/persons/search", params={"term": "ZOË@exämple.org", "fields": "email", "exact_match": "true"}).json()
    assert [i["item"]["id"] for i in found["data"]["items"]] == [person["id"]]
