"""Finding 11: no proxy-header handling (behind a load balancer every visitor shared one per-IP bucket, and
without one anyone could claim any address); the SQLite file and generated secrets were world-readable;
CSV cells were not quoted (a value with ';' became a cell of its own in semicolon locales)."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import stat

import pytest

from refstage.adapters.db.database import make_engine
from refstage.config import ConfigError, load_settings
from refstage_devkit.emulators.tls import ensure_certificates
from refstage.services import admin_queries
from tests.web.conftest import fill, site  # noqa: F401 - fixture reused


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- proxies ------------------------------------------------------------------------------------------------
def _app(rt, proxies: int):
    from refstage.web.app import create_app

    rt.settings = dataclasses.replace(rt.settings, trusted_proxies=proxies)
    app = create_app(runtime=rt, test_config={"TESTING": True})
    app.config["REFSTAGE_RATE_LIMITS"] = {"view_ip": (2, 60)}
    return app


def test_forwarded_for_is_ignored_without_trusted_proxies(rt, site):
    client = _app(rt, 0).test_client()
    # An attacker rotating X-Forwarded-For does not get a fresh bucket per request.
    statuses = [client.get(f"/r/{site.code}", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(4)]
    assert statuses == [200, 200, 429, 429]


def test_behind_one_proxy_each_visitor_has_their_own_bucket(rt, site):
    client = _app(rt, 1).test_client()
    one = [client.get(f"/r/{site.code}", headers={"X-Forwarded-For": "198.51.100.7"}).status_code for _ in range(3)]
    other = client.get(f"/r/{site.code}", headers={"X-Forwarded-For": "198.51.100.8"}).status_code
    assert one == [200, 200, 429] and other == 200
    # Only the last hop counts: a client-supplied first entry changes nothing.
    spoofed = client.get(f"/r/{site.code}", headers={"X-Forwarded-For": "10.9.9.9, 198.51.100.7"}).status_code
    assert spoofed == 429
    secure = client.get(f"/r/{site.code}", headers={"X-Forwarded-For": "198.51.100.9", "X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in secure.headers


def test_trusted_proxies_setting_is_validated(tmp_path):
    env = {"REFSTAGE_INSTANCE_DIR": str(tmp_path / "inst")}
    assert load_settings(env).trusted_proxies == 0
    assert load_settings({**env, "REFSTAGE_TRUSTED_PROXIES": "2"}).trusted_proxies == 2
    for bad in ("-1", "9", "many"):
        with pytest.raises(ConfigError):
            load_settings({**env, "REFSTAGE_TRUSTED_PROXIES": bad})


# --- files ----------------------------------------------------------------------------------------------------
def test_files_the_app_creates_are_owner_only(tmp_path):
    old = os.umask(0o022)  # the usual umask, under which the files were 0644
    try:
        instance = tmp_path / "instance"
        settings = load_settings({"REFSTAGE_INSTANCE_DIR": str(instance)})
        assert mode(instance) == 0o700
        for name in ("secret_key", "encryption_key"):
            assert mode(instance / name) == 0o600, name
        engine = make_engine(settings.database_url)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x)")
        engine.dispose()
        assert mode(instance / "refstage.db") == 0o600
        from refstage.jobs.queue import make_huey

        make_huey(dataclasses.replace(settings, queue_path=tmp_path / "q" / "queue.db"))
        assert mode(tmp_path / "q" / "queue.db") == 0o600 and mode(tmp_path / "q") == 0o700
        certs = ensure_certificates(tmp_path / "certs")
        assert mode(certs.key) == 0o600 and mode(tmp_path / "certs") == 0o700
    finally:
        os.umask(old)


def test_files_left_world_readable_by_an_older_version_are_tightened(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "secret_key").write_text("s" * 48)
    (instance / "refstage.db").touch()
    for name in ("secret_key", "refstage.db"):
        os.chmod(instance / name, 0o644)
    settings = load_settings({"REFSTAGE_INSTANCE_DIR": str(instance)})
    make_engine(settings.database_url).dispose()
    assert mode(instance / "secret_key") == 0o600 and mode(instance / "refstage.db") == 0o600
    certs = ensure_certificates(tmp_path / "certs")
    os.chmod(certs.key, 0o644)
    ensure_certificates(tmp_path / "certs")
    assert mode(certs.key) == 0o600


# --- CSV ------------------------------------------------------------------------------------------------------
def test_ledger_csv_quotes_every_cell_and_keeps_the_formula_guard():
    from types import SimpleNamespace

    from refstage.domain.money import Money

    reward = SimpleNamespace(id="r1", recipient=SimpleNamespace(value="advocate"), rule_key="adv", kind=SimpleNamespace(value="fixed"),
                             amount=Money("10", "USD"), status=SimpleNamespace(value="approved"), created_at=None,
                             decided_by=None, decision_comment="ok; =HYPERLINK(\"http://evil\")", issued_at=None,
                             payout_reference="=1+1", referral_id="ref1")
    row = admin_queries.LedgerRow(reward, "Prog;ram", "Ada; Lovelace", "\uff1dcmd", "fred@x.test")
    text = admin_queries.ledger_csv([row])
    data_line = text.splitlines()[1]
    cells = data_line.split('","')
    assert data_line.startswith('"') and data_line.endswith('"') and len(cells) == len(admin_queries.LEDGER_COLUMNS)
    assert text.splitlines()[0].startswith('"reward_id","program"')
    parsed = next(csv.DictReader(io.StringIO(text)))
    assert parsed["advocate"] == "Ada; Lovelace" and parsed["payout_reference"] == "'=1+1"
    assert parsed["friend_name"] == "'\uff1dcmd"
    # Read with ';' as the separator (a semicolon locale), the value still sits in one quoted cell.
    semicolon = next(csv.reader(io.StringIO(data_line), delimiter=";"))
    assert not any(cell.strip() == "Lovelace" or cell.strip() == "ram" for cell in semicolon)
