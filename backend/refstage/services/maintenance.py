"""Operator tasks: re-encrypting stored secrets (CRM credentials, OAuth hand-offs, webhook signing
secrets) under the newest key."""

from __future__ import annotations

from refstage.services.runtime import Runtime


def rotate_credentials(rt: Runtime) -> int:
    """Re-encrypt every sealed secret under the first configured key; after it, the other keys can be
    dropped. Returns how many secrets were rewritten."""
    from refstage.services.connections import PENDING_KEY
    from refstage.services.push_keys import PUSH_KEY_SETTING

    with rt.uow() as uow:
        count = uow.sealed_secrets.reseal(rt.vault.rotate, (PENDING_KEY, PUSH_KEY_SETTING))
        uow.commit()
    return count
