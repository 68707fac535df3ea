"""REST through simple-salesforce on our SalesforceSession: queries with paging, counts, sObject
Collections (≤200 per call), single upserts with headers, describes and limits."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError

from refstage.adapters.crm.salesforce.client import API_VERSION, SalesforceSession, crm_error, error_of
from refstage.services.ports import CrmError

COLLECTION_MAX = 200


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """simple-salesforce exceptions → CrmError with Salesforce's own message."""
    try:
        yield
    except SalesforceError as exc:
        content = exc.content
        code, message = None, str(content)
        if isinstance(content, list) and content and isinstance(content[0], dict):
            code, message = content[0].get("errorCode"), str(content[0].get("message"))
        raise crm_error(exc.status, code, message) from exc


def strip(record: dict[str, Any]) -> dict[str, Any]:
    """Drop `attributes` (recursively in parent relationships)."""
    out = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        out[key] = strip(value) if isinstance(value, dict) else value
    return out


class RestApi:
    def __init__(self, session: SalesforceSession, version: str = API_VERSION) -> None:
        self.session = session
        self.version = version
        creds = session.credentials
        self.sf = Salesforce(instance_url=creds.instance_url, session_id=creds.access_token, version=version,
                             session=session)

    @property
    def base(self) -> str:
        return f"{self.session.credentials.instance_url}/services/data/v{self.version}/"

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        response = self.session.request(method, self.base + path, **kw)
        if response.status_code >= 300:
            code, message = error_of(response)
            raise crm_error(response.status_code, code, message)
        return response

    def query_pages(self, soql: str, include_deleted: bool = False) -> Iterator[list[dict[str, Any]]]:
        with translated():
            page = self.sf.query(soql, include_deleted=include_deleted)
        while True:
            yield [strip(r) for r in page.get("records", [])]
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            with translated():
                page = self.sf.query_more(page["nextRecordsUrl"], identifier_is_url=True, include_deleted=include_deleted)

    def query(self, soql: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        return [r for page in self.query_pages(soql, include_deleted) for r in page]

    def count(self, soql: str, include_deleted: bool = False) -> int:
        with translated():
            return int(self.sf.query(soql, include_deleted=include_deleted)["totalSize"])

    def describe(self, sobject: str) -> dict[str, Any]:
        return self.call("GET", f"sobjects/{sobject}/describe").json()

    def limits(self) -> dict[str, Any]:
        return self.call("GET", "limits/").json()

    def upsert(self, sobject: str, ext_field: str, value: str, data: dict[str, Any],
               headers: dict[str, str] | None = None) -> tuple[str, bool]:
        response = self.call("PATCH", f"sobjects/{sobject}/{ext_field}/{value}", json=data, headers=headers or {})
        body = response.json() if response.content else {}
        return body.get("id"), response.status_code == 201

    def get(self, sobject: str, record_id: str, fields: Sequence[str]) -> dict[str, Any]:
        return strip(self.call("GET", f"sobjects/{sobject}/{record_id}", params={"fields": ",".join(fields)}).json())

    def retrieve_collection(self, sobject: str, record_ids: Sequence[str], fields: Sequence[str]) -> list[dict[str, Any] | None]:
        """One sObject Collections GET (≤200 ids): the records in request order, None where Salesforce has
        no such (live) record."""
        if len(record_ids) > COLLECTION_MAX:
            raise ValueError("at most 200 ids per collections call")
        body = self.call("GET", f"composite/sobjects/{sobject}",
                         params={"ids": ",".join(record_ids), "fields": ",".join(fields)}).json()
        if not isinstance(body, list):
            raise CrmError("unexpected sObject Collections answer", transient=True)
        return [strip(r) if isinstance(r, dict) else None for r in body]

    def collection(self, method: str, path: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One collections call (≤200 records, allOrNone false); per-record results in request order."""
        if len(records) > COLLECTION_MAX:
            raise ValueError("at most 200 records per collections call")
        body = self.call(method, path, json={"allOrNone": False, "records": records}).json()
        if not isinstance(body, list) or len(body) != len(records):
            raise CrmError("unexpected sObject Collections answer", transient=True)
        return body

    def upsert_collection(self, sobject: str, ext_field: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        typed = [{"attributes": {"type": sobject}, **r} for r in records]
        return self.collection("PATCH", f"composite/sobjects/{sobject}/{ext_field}", typed)

    def update_collection(self, sobject: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        typed = [{"attributes": {"type": sobject}, **r} for r in records]
        return self.collection("PATCH", "composite/sobjects", typed)


def result_error(result: dict[str, Any]) -> tuple[str | None, str]:
    errors = result.get("errors") or []
    if not errors:
        return None, "unknown error"
    first = errors[0]
    fields = first.get("fields") or []
    suffix = f" (fields: {', '.join(fields)})" if fields else ""
    return first.get("statusCode") or first.get("errorCode"), f"{first.get('message')}{suffix}"
