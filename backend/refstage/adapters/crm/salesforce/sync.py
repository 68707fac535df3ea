"""Incremental reads: per object a SystemModstamp watermark re-read with an overlap window, keyset
paging by (SystemModstamp, Id), queryAll so deletes arrive, REST for small change sets and a resumable
Bulk 2.0 query for large ones (chosen by a COUNT() first). Only the fields the rules need are pulled,
plus what lead conversion needs to keep attribution.

Lead, Opportunity and Account carry the package's Referral__c lookup, which the write-back sets on every
record a referral points at. Between reconciles only records with that lookup set are read (`Referral__c !=
null`): an org where a million deals changed but a tenth are referred costs a tenth of the read. A
reconcile (the first read, then every `reconcile_every`) reads everything changed since the previous
reconcile, so a lookup that was never written or that someone cleared costs a delay, never a lost change.

The cursor (kept by services.sync in sync_state after every batch):
    {"objects": {"Lead": {"watermark": ISO, "full_watermark": ISO, "full_at": ISO,
                          "run": {"lower", "pos": [ISO, Id], "high", "mode", "bulk", "filter", "reconcile"}}}}
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Any, Callable, Iterator

from refstage.adapters.crm.salesforce import soql
from refstage.adapters.crm.salesforce.bulk import BulkApi
from refstage.adapters.crm.salesforce.rest import RestApi
from refstage.services.ports import ChangeBatch, ChangedRecord

SYNC_OBJECTS = ("Lead", "Contact", "Account", "Opportunity")
BASE_FIELDS = {"Id", "SystemModstamp", "IsDeleted"}
# Attribution follows lead conversion: these are read whatever the rules say.
ALWAYS = {"Lead": {"IsConverted", "ConvertedOpportunityId", "ConvertedAccountId", "ConvertedContactId", "Referral__c"},
          "Opportunity": {"Referral__c"}, "Account": {"Referral__c"}}
# Objects whose records point back at their referral: between reconciles, only those are read.
# Leads Refstage created carry their referral's id from the start (so a conversion before the first write-back
# is still seen); others once the write-back has set Referral__c.
LINKED_ONLY = {"Lead": "(Referral__c != null OR Refstage_Referral_Id__c != null)", "Opportunity": "Referral__c != null",
               "Account": "Referral__c != null"}
RECONCILE_EVERY = dt.timedelta(hours=24)
OVERLAP = dt.timedelta(seconds=600)
REST_PAGE = 2000
_SF_TIME = re.compile(r"([+-]\d{2})(\d{2})$")


def parse_time(value: Any) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    text = _SF_TIME.sub(r"\1:\2", str(value).strip().replace("Z", "+00:00"))
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.timezone.utc).isoformat() if value else None


def fields_for(obj: str, wanted: dict[str, set[str]]) -> list[str]:
    names = set(wanted.get(obj, set())) | BASE_FIELDS | ALWAYS.get(obj, set())
    return sorted(names, key=lambda n: (n != "Id", n))


def objects_for(wanted: dict[str, set[str]]) -> list[str]:
    chosen = {o for o in wanted if o in SYNC_OBJECTS} | {"Lead"}
    return [o for o in SYNC_OBJECTS if o in chosen]


def changed(obj: str, records: list[dict[str, Any]]) -> list[ChangedRecord]:
    out = []
    for rec in records:
        fields = {k: v for k, v in rec.items() if k not in ("IsDeleted",)}
        out.append(ChangedRecord(obj, rec["Id"], fields, parse_time(rec.get("SystemModstamp")), bool(rec.get("IsDeleted"))))
    return out


class ChangeReader:
    def __init__(self, rest: RestApi, bulk: BulkApi, types: Callable[[str], dict[str, str]], calls: Callable[[], int], *,
                 server_time: Callable[[], dt.datetime | None] = lambda: None,
                 bulk_threshold: int = 10_000, page_size: int = REST_PAGE, first_sync_from: dt.datetime | None = None,
                 reconcile_every: dt.timedelta | None = RECONCILE_EVERY,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)) -> None:
        self.rest = rest
        self.bulk = bulk
        self.types = types
        self.calls = calls
        self.bulk_threshold = bulk_threshold
        self.page_size = page_size
        self.first_sync_from = first_sync_from
        self.server_time = server_time
        # None or zero: every read is a reconcile (no Referral__c filter).
        self.reconcile_every = reconcile_every if reconcile_every and reconcile_every.total_seconds() > 0 else None
        self.now = now
        self._last_calls = calls()  # so the first batch also counts the calls made before reading

    def _batch(self, records: list[ChangedRecord], cursor: dict[str, Any], done: bool) -> ChangeBatch:
        now = self.calls()
        spent, self._last_calls = now - self._last_calls, now
        return ChangeBatch(records, copy.deepcopy(cursor), api_calls=spent, done=done)

    def read(self, wanted: dict[str, set[str]], cursor: dict[str, Any]) -> Iterator[ChangeBatch]:
        cursor = copy.deepcopy(cursor or {})
        states = cursor.setdefault("objects", {})
        objects = objects_for(wanted)
        for index, obj in enumerate(objects):
            last = index == len(objects) - 1
            state = states.setdefault(obj, {})
            names = fields_for(obj, wanted)
            run = state.get("run")
            if run is None or run.get("fields") != names:
                reconcile = self._reconcile_due(obj, state)
                # A reconcile starts from the previous reconcile; a filtered read from the last read.
                mark = (state.get("full_watermark") or state.get("watermark")) if reconcile else state.get("watermark")
                watermark = parse_time(mark)
                lower = watermark - OVERLAP if watermark else (self.first_sync_from - OVERLAP if self.first_sync_from else None)
                only = [] if reconcile else [LINKED_ONLY[obj]]
                where = ([f"SystemModstamp >= {soql.datetime_literal(lower)}"] if lower else []) + only
                total = self.rest.count(soql.count(obj, where), include_deleted=True)
                run = {"lower": iso(lower), "pos": None, "high": state.get("watermark"), "fields": names,
                       "mode": "bulk" if total > self.bulk_threshold else "rest", "total": total,
                       "started": iso(self.server_time()), "filter": only, "reconcile": reconcile}
                state["run"] = run
            if run["mode"] == "rest" and run.get("total") == 0 and not run["pos"]:
                # COUNT() said nothing changed: no query (a quiet org costs one call per object).
                self._finish(state)
                yield self._batch([], cursor, last)
            elif run["mode"] == "rest":
                yield from self._rest(obj, state, cursor, last)
            else:
                yield from self._bulk(obj, state, cursor, last)

    def _reconcile_due(self, obj: str, state: dict[str, Any]) -> bool:
        if obj not in LINKED_ONLY or self.reconcile_every is None:
            return True  # nothing to filter on: every read reads every change
        full_at = parse_time(state.get("full_at"))
        return full_at is None or self.now() - full_at >= self.reconcile_every

    def _finish(self, state: dict[str, Any]) -> None:
        """The next read starts an overlap before the watermark. The watermark is the newest record seen, or
        the org's own clock when this read began if that is later: everything up to then has been read, so
        a quiet org is not re-read forever (never our clock, never past the read's start). A reconcile also
        moves the reconcile watermark (it read unfiltered)."""
        run = state.pop("run")
        candidates = [t for t in (parse_time(run.get("high")), parse_time(run.get("started")),
                                  parse_time(state.get("watermark"))) if t]
        if candidates:
            state["watermark"] = iso(max(candidates))
            if run.get("reconcile", True):
                state["full_watermark"] = state["watermark"]
                state["full_at"] = iso(self.now())

    @staticmethod
    def _raise_high(run: dict[str, Any], records: list[dict[str, Any]]) -> None:
        stamps = [parse_time(r.get("SystemModstamp")) for r in records]
        newest = max((s for s in stamps if s), default=None)
        high = parse_time(run.get("high"))
        if newest and (high is None or newest > high):
            run["high"] = iso(newest)

    def _rest(self, obj: str, state: dict[str, Any], cursor: dict[str, Any], last: bool) -> Iterator[ChangeBatch]:
        run = state["run"]
        while True:
            where = []
            if run["pos"]:
                where.append(soql.after("SystemModstamp", parse_time(run["pos"][0]), run["pos"][1]))
            elif run["lower"]:
                where.append(f"SystemModstamp >= {soql.datetime_literal(parse_time(run['lower']))}")
            where.extend(run.get("filter") or [])
            query = soql.select(run["fields"], obj, where, ["SystemModstamp ASC", "Id ASC"], limit=self.page_size)
            records = self.rest.query(query, include_deleted=True)
            if records:
                run["pos"] = [iso(parse_time(records[-1]["SystemModstamp"])), records[-1]["Id"]]
                self._raise_high(run, records)
            finished = len(records) < self.page_size
            if finished:
                self._finish(state)
            yield self._batch(changed(obj, records), cursor, finished and last)
            if finished:
                return

    def _bulk(self, obj: str, state: dict[str, Any], cursor: dict[str, Any], last: bool) -> Iterator[ChangeBatch]:
        run = state["run"]
        where = [f"SystemModstamp >= {soql.datetime_literal(parse_time(run['lower']))}"] if run["lower"] else []
        query = soql.select(run["fields"], obj, where + list(run.get("filter") or []))
        types = self.types(obj)
        for rows, position in self.bulk.query_pages(obj, query, run.get("bulk") or {}, types):
            run["bulk"] = position
            self._raise_high(run, rows)
            finished = bool(position.get("done"))
            if finished:
                self._finish(state)
            yield self._batch(changed(obj, rows), cursor, finished and last)
