"""Which adapter serves a connection. The only place that knows every CRM kind."""

from __future__ import annotations

from typing import Any

from refstage.domain.connections import CrmConnection, CrmKind
from refstage.services.ports import CrmGateway


def gateway_for(rt: Any, connection: CrmConnection) -> CrmGateway:
    if connection.kind == CrmKind.SALESFORCE:
        from refstage.adapters.crm.salesforce.gateway import SalesforceGateway

        return SalesforceGateway(rt, connection)
    if connection.kind == CrmKind.PIPEDRIVE:
        from refstage.adapters.crm.pipedrive.gateway import PipedriveGateway

        return PipedriveGateway(rt, connection)
    raise ValueError(f"no CRM adapter for {connection.kind!r}")
