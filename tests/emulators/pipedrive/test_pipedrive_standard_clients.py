"""Standard clients, unmodified: authlib's OAuth2Session (code flow + automatic refresh),
scopes enforced per operation, slow webhook receivers, concurrent writers."""

from __future__ import annotations

import re
import threading
import time

from authlib.integrations.requests_client import OAuth2Session

from refstage_devkit.emulators.pipedrive.server import PipedriveEmulator

REDIRECT = "http://localhost:8000/oauth/callback"


def _approve(emu, anon, url: str, client_id: str) -> str:
    page = anon.get(url)
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page.text))
    assert form["client_id"] == client_id
    form.update(email="admin@refstage.test", password="demo", decision="allow")
    return anon.post("/oauth/authorize", data=form, allow_redirects=False).headers["Location"]


def test_authlib_code_flow_and_auto_refresh(cert_dir, session_for, monkeypatch):
    with PipedriveEmulator(port=0, cert_dir=cert_dir, token_ttl=30) as emu:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_path)  # how clients trust the local CA
        anon = session_for(emu)
        refreshed: list[dict] = []
        client = OAuth2Session("refstage-demo", "refstage-demo-secret", redirect_uri=REDIRECT,
                               token_endpoint_auth_method="client_secret_basic",
                               token_endpoint=emu.base_url + "/oauth/token",
                               update_token=lambda token, refresh_token=None, access_token=None: refreshed.append(token))
        url, state = client.create_authorization_url(emu.base_url + "/oauth/authorize")
        callback = _approve(emu, anon, url, "refstage-demo")
        token = client.fetch_token(emu.base_url + "/oauth/token", authorization_response=callback)
        assert token["api_domain"] == emu.base_url and token["expires_in"] == 30
        # authlib treats a token within 60 s of expiry as expired: the next call refreshes first
        r = client.get(token["api_domain"] + "/api/v2/deals")
        assert r.status_code == 200 and len(r.json()["data"]) == 6
        assert len(refreshed) == 1 and refreshed[0]["refresh_token"] != token["refresh_token"]
        client.close()


def test_oauth_scopes_are_enforced(emu, anon, control):
    control.post("/apps", {"client_id": "no-admin", "client_secret": "pw",
                           "scopes": "base deals:read contacts:read"})
    callback = _approve(emu, anon, f"/oauth/authorize?client_id=no-admin&redirect_uri={REDIRECT}&state=s", "no-admin")
    code = re.search(r"code=([^&]+)", callback).group(1)
    token = anon.post("/oauth/token", auth=("no-admin", "pw"), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}).json()
    bearer = {"Authorization": "Bearer " + token["access_token"]}
    assert anon.get("/api/v2/deals", headers=bearer).status_code == 200
    denied = anon.post("/api/v2/deals", headers=bearer, json={"title": "nope"})
    assert denied.status_code == 403 and denied.json()["error"] == "Scope and URL mismatch"
    assert anon.get("/api/v1/webhooks", headers=bearer).status_code == 403
    assert anon.post("/api/v1/dealFields", headers=bearer, json={"name": "x", "field_type": "varchar"}).status_code == 403
    assert anon.get("/api/v2/persons/search", headers=bearer, params={"term": "ab"}).status_code == 200


def test_slow_receiver_counts_as_failure(cert_dir, session_for, receiver):
    with PipedriveEmulator(port=0, cert_dir=cert_dir, webhook_time_scale=0.01, webhook_timeout=0.2) as emu:
        s = session_for(emu, emu.api_token)
        s.post("/api/v1/webhooks", json={"subscription_url": receiver.url, "event_action": "change",
                                         "event_object": "deal", "version": "2.0"})
        receiver.delay = 0.5
        s.patch("/api/v2/deals/1", json={"title": "slow answer"})
        events = receiver.wait_for(2, timeout=5)
        assert [e["meta"]["attempt"] for e in events[:2]] == [1, 2]
        receiver.delay = 0
        emu.wait_for_webhooks(5)
        delivery = s.get("/_emulator/webhooks/deliveries").json()["data"][0]
        assert delivery["attempts"][0]["error"] == "ReadTimeout"


def test_concurrent_writers(api, emu):
    errors: list[int] = []
    ids: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        import requests

        with requests.Session() as s:
            for i in range(5):
                r = s.post(emu.base_url + "/api/v2/deals", json={"title": f"c{n}-{i}"},
                           headers={"x-api-token": emu.api_token}, verify=emu.ca_path)
                r2 = s.patch(emu.base_url + "/api/v2/deals/1", json={"value": n * 100 + i},
                             headers={"x-api-token": emu.api_token}, verify=emu.ca_path)
                with lock:
                    if r.status_code != 200 or r2.status_code != 200:
                        errors.append(r.status_code)
                    else:
                        ids.append(r.json()["data"]["id"])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and len(ids) == 30 == len(set(ids))
    assert time.monotonic() - started < 30
    assert len(api.get("/api/v2/deals", params={"limit": 500}).json()["data"]) == 36
