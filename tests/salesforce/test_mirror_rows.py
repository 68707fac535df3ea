"""The Salesforce rows a write-back sends: the Bulk path's value tuples and the REST path's dicts are one mapping,
and the date texts match soql's literal whatever the time zone (the fast path caches the last value)."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from refstage.adapters.crm.salesforce import gateway, soql
from refstage.adapters.crm.salesforce.gateway import (REFERRAL_FIELDS, REWARD_FIELDS_BY_ID, REWARD_FIELDS_BY_REFERENCE,
                                                      SalesforceGateway)
from refstage.domain.money import Money
from refstage.domain.referrals import Advocate, AdvocateSource, CrmRefs, Referral, ReferralSource, ReferralStatus
from refstage.domain.review import Flag, Reason
from refstage.domain.rewards import Recipient, Reward, RewardKind, RewardStatus

AT = dt.datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=dt.timezone.utc)


def test_datetime_and_date_texts_are_soqls_in_any_zone_and_on_repeats():
    values = [AT, AT, AT.replace(microsecond=0), AT.astimezone(ZoneInfo("America/New_York")),
              AT.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))), AT.replace(tzinfo=ZoneInfo("UTC")),
              dt.datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=ZoneInfo("Pacific/Auckland"))]
    for value in values + values[::-1]:
        assert gateway._dt(value) == soql.datetime_literal(value)
        assert gateway._date(value) == value.astimezone(dt.timezone.utc).date().isoformat()
    assert gateway._dt(None) is None and gateway._date(None) is None
    with pytest.raises(ValueError):
        gateway._dt(AT.replace(tzinfo=None))


def test_bulk_values_and_rest_rows_carry_the_same_fields():
    advocate = Advocate(id="adv1", tenant_id="t", program_id="p", name="Ann", email="ann@x.test", code="CODE2",
                        source=AdvocateSource.SALESFORCE_CONTACT, crm_object="Contact", crm_id="003A")
    referral = Referral(id="ref1", tenant_id="t", program_id="p", advocate_id="adv1", friend_name="Fred",
                        friend_email="fred@x.test", friend_company=None, friend_phone=None, source=ReferralSource.LINK,
                        consent_at=AT, consent_version="v1", captured_at=AT, status=ReferralStatus.QUALIFIED,
                        crm=CrmRefs(lead_id="00Q1", opportunity_id="0061"), flags=[Flag(Reason.OVER_AMOUNT_THRESHOLD, {})],
                        qualified_at=AT + dt.timedelta(days=1))
    reward = Reward(id="rw1", tenant_id="t", program_id="p", referral_id="ref1", recipient=Recipient.FRIEND,
                    rule_key="friend", kind=RewardKind.FIXED, amount=Money("12.50", "EUR"), status=RewardStatus.PENDING_HOLD,
                    created_at=AT, hold_until=AT + dt.timedelta(days=30))
    row = SalesforceGateway._referral_row(referral, advocate, "a0A1")
    assert tuple(row) == REFERRAL_FIELDS
    assert row == dict(zip(REFERRAL_FIELDS, SalesforceGateway._referral_values(referral, advocate, "a0A1")))
    assert (row["Advocate__c"], row["Referred_Lead__c"], row["Review_Reason__c"], row["Qualified_Date__c"],
            row["Rewarded_Date__c"]) == ("003A", "00Q1", Reason.OVER_AMOUNT_THRESHOLD.value, "2026-03-05T05:06:07.891Z", None)
    by_id = SalesforceGateway._reward_row(reward, "a0B1")
    by_reference = SalesforceGateway._reward_row(reward, None)
    assert tuple(by_id) == REWARD_FIELDS_BY_ID and tuple(by_reference) == REWARD_FIELDS_BY_REFERENCE
    assert by_id["Referral__c"] == "a0B1" and by_reference["Referral__r.Backend_Id__c"] == "ref1"
    assert list(by_reference.values()) == list(SalesforceGateway._reward_values(reward, "ref1"))
    assert (by_id["Amount__c"], by_id["Hold_Until__c"], by_id["Issued_Date__c"], by_id["Review_Reason__c"]) == (
        12.5, "2026-04-03", None, None)
