"""The allow-lists the CRM adapters check before sending a client secret, a token or a request:
the official patterns (domain.hosts) plus what the settings add. Loopback (the emulators) only when
the development setting REFSTAGE_ALLOW_LOOPBACK_CRM_HOSTS is on, and never in production."""

from __future__ import annotations

from typing import Any

from refstage.domain.hosts import PIPEDRIVE_HOSTS, SALESFORCE_HOSTS, HostNotAllowed, HostPolicy

__all__ = ["salesforce_hosts", "pipedrive_hosts", "HostNotAllowed"]


def _loopback_allowed(settings: Any) -> bool:
    return bool(getattr(settings, "allow_loopback_crm_hosts", False)) and not getattr(settings, "is_production", True)


def salesforce_hosts(settings: Any) -> HostPolicy:
    extra = tuple(getattr(settings, "salesforce_login_hosts", ()) or ())
    return HostPolicy("Salesforce", SALESFORCE_HOSTS + extra, _loopback_allowed(settings))


def pipedrive_hosts(settings: Any) -> HostPolicy:
    return HostPolicy("Pipedrive", PIPEDRIVE_HOSTS, _loopback_allowed(settings))
