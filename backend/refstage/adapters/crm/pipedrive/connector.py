"""What the services use of Pipedrive beyond the CRM port (services.ports.PipedriveConnector): OAuth and API
tokens, the API client, and the deal webhook with its HTTP Basic credentials. The composition root hands this
module to the runtime; the functions are the adapter's own."""

from __future__ import annotations

from typing import Any

from refstage.adapters.crm.pipedrive.auth import (
    ApiTokenCredentials, OAuthApp, StaticOAuthCredentials, authorize_url, checked_api_domain, credentials_for,
    exchange_code, revoke, tls_verify,
)
from refstage.adapters.crm.pipedrive.client import PipedriveClient
from refstage.adapters.crm.pipedrive.webhooks import check_basic, new_basic_credentials, parse_delivery
from refstage.adapters.crm.pipedrive.webhooks import existing as existing_webhooks
from refstage.adapters.crm.pipedrive.webhooks import register as register_webhook
from refstage.adapters.crm.pipedrive.webhooks import unregister as unregister_webhook


def gateway(rt: Any, connection: Any) -> Any:
    from refstage.adapters.crm.pipedrive.gateway import PipedriveGateway

    return PipedriveGateway(rt, connection)


__all__ = ["ApiTokenCredentials", "OAuthApp", "PipedriveClient", "StaticOAuthCredentials", "authorize_url",
           "check_basic", "checked_api_domain", "credentials_for", "exchange_code", "existing_webhooks", "gateway",
           "new_basic_credentials", "parse_delivery", "register_webhook", "revoke", "tls_verify",
           "unregister_webhook"]
