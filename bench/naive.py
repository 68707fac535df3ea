"""The naive integration of benchmark (a): what a quick script does — simple-salesforce `query_all`
over the changed opportunities, then one REST call per changed referral.

At 100,000 changed referrals the naive path needs hours of REST calls on this machine. With `limit_s` the
per-referral loop stops after that many seconds; the result says how many updates were measured
(`updates_measured`) out of how many are due (`updates_due`), and the caller projects the rest from the
measured rate (reported as such)."""

from __future__ import annotations

import time

from simple_salesforce import Salesforce


def run_naive(rt, tenant_id: str, connection_id: str, since: str, base: str, limit_s: float | None = None) -> dict:
    from refstage.adapters.db import models as m
    from sqlalchemy import select

    with rt.uow(tenant_id) as uow:
        sealed = uow.connections.credentials(connection_id)
        by_opp = dict(uow.session.execute(select(m.ReferralRow.opportunity_id, m.ReferralRow.id).where(
            m.ReferralRow.connection_id == connection_id, m.ReferralRow.opportunity_id.is_not(None))).all())
    token = rt.vault.open(sealed)
    sf = Salesforce(instance_url=base, session_id=token["access_token"], version="62.0")
    from refstage.adapters.crm.salesforce.soql import datetime_literal
    from refstage.adapters.crm.salesforce.sync import parse_time

    since_soql = datetime_literal(parse_time(since))
    t0 = time.perf_counter()
    rows = sf.query_all(f"SELECT Id, StageName, Amount FROM Opportunity WHERE SystemModstamp > {since_soql}")["records"]
    query_s = time.perf_counter() - t0
    due = [row for row in rows if row["Id"] in by_opp]
    updated = 0
    t1 = time.perf_counter()
    for row in due:
        if limit_s is not None and time.perf_counter() - t1 > limit_s:
            break
        referral_id = by_opp[row["Id"]]
        won = row["StageName"] == "Closed Won" and (row["Amount"] or 0) >= 5000
        sf.Referral__c.upsert(f"Backend_Id__c/{referral_id}", {"Status__c": "qualified" if won else "in_progress",
                                                                "Referred_Opportunity__c": row["Id"]})
        updated += 1
    update_s = time.perf_counter() - t1
    return {"pulled": len(rows), "updated": updated, "updates_measured": updated, "updates_due": len(due),
            "query_s": query_s, "update_s": update_s}


# sObject Collections take at most 200 records per call.
COLLECTION_SIZE = 200


def run_competent(rt, tenant_id: str, connection_id: str, since: str, base: str) -> dict:
    """The competent baseline of issue 22: what a careful integrator writes with simple-salesforce. The same
    `query_all` over the changed opportunities, then the referrals upserted by external id through sObject
    Collections, 200 records per call (`PATCH composite/sobjects/Referral__c/Backend_Id__c`). Like the naive one it
    keeps no state, creates no rewards and writes no audit: it is the floor of the API work, not a full product."""
    from refstage.adapters.db import models as m
    from sqlalchemy import select

    with rt.uow(tenant_id) as uow:
        sealed = uow.connections.credentials(connection_id)
        by_opp = dict(uow.session.execute(select(m.ReferralRow.opportunity_id, m.ReferralRow.id).where(
            m.ReferralRow.connection_id == connection_id, m.ReferralRow.opportunity_id.is_not(None))).all())
    token = rt.vault.open(sealed)
    sf = Salesforce(instance_url=base, session_id=token["access_token"], version="62.0")
    from refstage.adapters.crm.salesforce.soql import datetime_literal
    from refstage.adapters.crm.salesforce.sync import parse_time

    since_soql = datetime_literal(parse_time(since))
    t0 = time.perf_counter()
    rows = sf.query_all(f"SELECT Id, StageName, Amount FROM Opportunity WHERE SystemModstamp > {since_soql}")["records"]
    query_s = time.perf_counter() - t0
    records = []
    for row in rows:
        referral_id = by_opp.get(row["Id"])
        if referral_id is None:
            continue
        won = row["StageName"] == "Closed Won" and (row["Amount"] or 0) >= 5000
        records.append({"attributes": {"type": "Referral__c"}, "Backend_Id__c": referral_id,
                        "Status__c": "qualified" if won else "in_progress", "Referred_Opportunity__c": row["Id"]})
    t1 = time.perf_counter()
    failed = calls = 0
    for start in range(0, len(records), COLLECTION_SIZE):
        answer = sf.restful("composite/sobjects/Referral__c/Backend_Id__c", method="PATCH",
                            json={"allOrNone": False, "records": records[start:start + COLLECTION_SIZE]})
        calls += 1
        failed += sum(1 for item in answer if not item.get("success"))
    update_s = time.perf_counter() - t1
    return {"pulled": len(rows), "updated": len(records) - failed, "failed": failed, "collection_calls": calls,
            "query_s": query_s, "update_s": update_s}
