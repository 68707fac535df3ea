"""What the services use of Salesforce beyond the gateway (services.ports.SalesforceConnector): the connected
app and its OAuth flow, the Outbound Message format, the push-path installer and the External Client App
bundle. The composition root hands this module to the runtime; the functions are the adapter's own."""

from __future__ import annotations

from typing import Any

from refstage.adapters.crm.salesforce.auth import (
    LOGIN_HOSTS, OAuthApp, authorize_url, exchange_code, identity, login_host_url, org_and_user, pkce_pair, revoke,
)
from refstage.adapters.crm.salesforce.eca_bundle import write_bundle
from refstage.adapters.crm.salesforce.outbound_message import MAX_BODY as MAX_MESSAGE_BODY
from refstage.adapters.crm.salesforce.outbound_message import parse as parse_outbound_message
from refstage.adapters.crm.salesforce.sync import parse_time


def push_path_installer(rt: Any, connection: Any) -> Any:
    # Imported on use: the installer pulls in the Metadata API client, which most processes never need.
    from refstage.adapters.crm.salesforce.push_installer import SalesforcePushPathInstaller

    return SalesforcePushPathInstaller(rt, connection)


__all__ = ["LOGIN_HOSTS", "MAX_MESSAGE_BODY", "OAuthApp", "authorize_url", "exchange_code", "identity",
           "login_host_url", "org_and_user", "parse_outbound_message", "parse_time", "pkce_pair",
           "push_path_installer", "revoke", "write_bundle"]
