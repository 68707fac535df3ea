"""Operator tasks: re-encrypting stored secrets (CRM credentials, OAuth hand-offs, webhook signing
secrets) under the newest key."""

from __future__ import annotations

from sqlalchemy import select

from refstage.adapters.db import models as m
from refstage.services.runtime import Runtime


def rotate_credentials(rt: Runtime) -> int:
    """Re-encrypt every sealed secret under the first configured key; after it, the other keys can be
    dropped. Returns how many secrets were rewritten."""
    from refstage.services.connections import PENDING_KEY
    from refstage.services.push_keys import PUSH_KEY_SETTING

    count = 0
    with rt.session_factory() as session:
        for row in session.scalars(select(m.ConnectionRow)):
            if row.credentials:
                row.credentials = rt.vault.rotate(row.credentials)
                count += 1
            for key in (PENDING_KEY, PUSH_KEY_SETTING):
                if (row.settings or {}).get(key):
                    row.settings = {**row.settings, key: rt.vault.rotate(row.settings[key])}
                    count += 1
        for endpoint in session.scalars(select(m.WebhookEndpointRow)):
            endpoint.secret = rt.vault.rotate(endpoint.secret)
            count += 1
        session.commit()
    return count
