"""API v1 endpoints the connector needs: dealFields/personFields, notes, users."""

from __future__ import annotations

import re


def test_deal_and_person_fields(api):
    fields = api.get("/api/v1/dealFields").json()
    keys = [f["key"] for f in fields["data"]]
    assert "stage_id" in keys and "title" in keys
    assert fields["additional_data"]["pagination"]["more_items_in_collection"] is False
    created = api.post("/api/v1/personFields", json={"name": "Referral code", "field_type": "varchar"}).json()["data"]
    assert re.fullmatch(r"[0-9a-f]{40}", created["key"]) and created["edit_flag"] is True
    assert created["key"] in [f["key"] for f in api.get("/api/v1/personFields").json()["data"]]
    assert api.get(f"/api/v1/personFields/{created['id']}").json()["data"]["key"] == created["key"]
    person = api.post("/api/v2/persons", json={"name": "Ada Advocate", "custom_fields": {created["key"]: "ADA-1"}}).json()["data"]
    assert person["custom_fields"][created["key"]] == "ADA-1"
    enum = api.post("/api/v1/dealFields", data={"name": "Referral status", "field_type": "enum",
                                                "options": None}).status_code
    assert enum == 400
    opts = api.post("/api/v1/dealFields", json={"name": "Referral status", "field_type": "enum",
                                                "options": [{"label": "pending"}, {"label": "qualified"}]}).json()["data"]
    assert [o["label"] for o in opts["options"]] == ["pending", "qualified"]
    assert api.post("/api/v1/dealFields", json={"name": "x", "field_type": "blob"}).status_code == 400


def test_note_on_deal(api):
    r = api.post("/api/v1/notes", json={"content": "Referred by Ada Advocate (code ADA-1)", "deal_id": 2})
    note = r.json()["data"]
    assert note["deal_id"] == 2 and note["deal"]["title"] and note["user_id"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", note["add_time"])
    listed = api.get("/api/v1/notes", params={"deal_id": 2}).json()["data"]
    assert [n["id"] for n in listed] == [note["id"]]
    assert api.post("/api/v1/notes", json={"content": "orphan"}).status_code == 400
    assert api.post("/api/v1/notes", json={"content": "x", "deal_id": 999}).status_code == 400


def test_users(api):
    me = api.get("/api/v1/users/me").json()["data"]
    assert me["is_you"] is True and me["company_id"]
    users = api.get("/api/v1/users").json()["data"]
    assert {u["id"] for u in users} == {1, 2, 3}
