"""Token-endpoint calls shared by the CRM adapters: every failure becomes a CrmError that says whether
retrying can help, and a refused grant becomes ReconnectRequired (a person must connect again)."""

from __future__ import annotations

from typing import Any, Callable

import requests
from authlib.integrations.base_client.errors import OAuthError

from refstage.services.ports import CrmError, ReconnectRequired


def call_token_endpoint(fn: Callable[..., Any], *args: Any, crm: str, **kw: Any) -> dict[str, Any]:
    try:
        return dict(fn(*args, **kw))
    except OAuthError as exc:
        if exc.error == "invalid_grant":
            raise ReconnectRequired(f"{crm} refused the grant: {exc.description or exc.error}") from exc
        raise CrmError(f"{crm} OAuth error: {exc.error}: {exc.description or ''}".strip(), transient=False,
                       code=exc.error) from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise CrmError(f"{crm}'s token endpoint could not be reached: {exc}", transient=True) from exc
    except requests.HTTPError as exc:  # authlib raises for a 5xx or another non-OAuth error status
        status = exc.response.status_code if exc.response is not None else None
        raise CrmError(f"{crm}'s token endpoint answered {status}: {exc}", transient=status is None or status >= 500,
                       status=status) from exc
    except ValueError as exc:  # a non-JSON answer (an HTML error page)
        raise CrmError(f"unexpected answer from {crm}'s token endpoint: {exc}", transient=True) from exc
