"""The Tooling API as far as the Salesforce CLI uses it against a production-like org: ``tooling/query``
on ``SandboxProcess`` (this org is not a sandbox's source: no rows) and ``SourceMember`` (the org does
not track source: no rows), and ``tooling/sobjects`` listing them. Other Tooling entities answer
INVALID_TYPE, as an org does for an entity it does not have.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from .errors import SFError
from .rest import api_call
from .server import json_response

if TYPE_CHECKING:
    from .server import Org

TOOLING_ENTITIES = {
    "SandboxProcess": "0GR",
    "SourceMember": "0MZ",
}
_FROM = re.compile(r"\bFROM\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)
_SELECT = re.compile(r"^\s*SELECT\s+.+\s+FROM\s+", re.IGNORECASE | re.DOTALL)


def tooling_query(org: Org, request: Request, version: str) -> Response:
    api_call(org, request, version)
    text = request.args.get("q")
    if not text:
        raise SFError(400, "MALFORMED_QUERY", "A query string has to be specified")
    match = _FROM.search(text)
    if not _SELECT.match(text) or match is None:
        raise SFError(400, "MALFORMED_QUERY", "unexpected token: " + (text.split()[0] if text.split() else "<EOF>"))
    entity = match.group(1)
    canon = next((e for e in TOOLING_ENTITIES if e.lower() == entity.lower()), None)
    if canon is None:
        raise SFError(400, "INVALID_TYPE", f"\n{text}\n{' ' * match.start(1)}^\nERROR at Row:1:Column:"
                      f"{match.start(1) + 1}\nsObject type '{entity}' is not supported.")
    return json_response({"size": 0, "totalSize": 0, "done": True, "queryLocator": None, "entityTypeName": canon,
                          "records": []})


def tooling_sobjects(org: Org, request: Request, version: str) -> Response:
    api_call(org, request, version)
    base = f"/services/data/v{version}/tooling/sobjects"
    out: list[dict[str, Any]] = [{
        "name": name, "label": name, "keyPrefix": prefix, "queryable": True, "createable": False,
        "updateable": False, "deletable": False, "custom": False,
        "urls": {"sobject": f"{base}/{name}", "describe": f"{base}/{name}/describe"}}
        for name, prefix in TOOLING_ENTITIES.items()]
    return json_response({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": out})


def routes() -> list[tuple[str, list[str], Any]]:
    d = "/services/data/v<version>/tooling"
    return [
        (f"{d}/query", ["GET"], tooling_query),
        (f"{d}/query/", ["GET"], tooling_query),
        (f"{d}/sobjects", ["GET"], tooling_sobjects),
    ]
