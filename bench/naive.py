"""The naive integration of benchmark (a): what a quick script does — simple-salesforce `query_all`
over the changed opportunities, then one REST call per changed referral."""

from __future__ import annotations

from simple_salesforce import Salesforce


def run_naive(rt, tenant_id: str, connection_id: str, since: str, base: str) -> dict:
    from refstage.adapters.db import models as m
    from sqlalchemy import select

    with rt.uow(tenant_id) as uow:
        sealed = uow.connections.credentials(connection_id)
        by_opp = dict(uow.session.execute(select(m.ReferralRow.opportunity_id, m.ReferralRow.id).where(
            m.ReferralRow.connection_id == connection_id, m.ReferralRow.opportunity_id.is_not(None))).all())
    token = rt.vault.open(sealed)
    sf = Salesforce(instance_url=base, session_id=token["access_token"], version="62.0")
    since_soql = since.replace("+00:00", "Z")
    rows = sf.query_all(f"SELECT Id, StageName, Amount FROM Opportunity WHERE SystemModstamp > {since_soql}")["records"]
    updated = 0
    for row in rows:
        referral_id = by_opp.get(row["Id"])
        if referral_id is None:
            continue
        won = row["StageName"] == "Closed Won" and (row["Amount"] or 0) >= 5000
        sf.Referral__c.upsert(f"Backend_Id__c/{referral_id}", {"Status__c": "qualified" if won else "in_progress",
                                                                "Referred_Opportunity__c": row["Id"]})
        updated += 1
    return {"pulled": len(rows), "updated": updated}
