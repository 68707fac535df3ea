"""Tenants, users and API keys."""

from __future__ import annotations

import hmac
import re

from refstage.domain.audit import Actor, AuditEntry
from refstage.domain.errors import Conflict, InvalidInput
from refstage.domain.referrals import normalise_email
from refstage.domain.tenants import (
    Role,
    Tenant,
    User,
    api_key_prefix,
    hash_api_key,
    hash_password,
    issue_api_key,
    verify_password,
)
from refstage.services.runtime import Runtime


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64] or "tenant"


def create_tenant(rt: Runtime, name: str, slug: str | None = None) -> Tenant:
    tenant = Tenant(rt.new_id(), name.strip(), slug or slugify(name))
    with rt.uow() as uow:
        if uow.tenants.by_slug(tenant.slug):
            raise Conflict(f"a tenant with slug {tenant.slug!r} exists")
        uow.tenants.add(tenant)
        uow.commit()
    return tenant


def add_user(rt: Runtime, tenant_id: str, email: str, role: Role | str, password: str | None = None,
             name: str = "", salesforce_identity: tuple[str, str] | None = None) -> User:
    email = normalise_email(email)
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput({"role": "admin or reviewer"}) from None
    user = User(rt.new_id(), tenant_id, email, role, hash_password(password) if password else None, name,
                salesforce_identity[1] if salesforce_identity else None)
    with rt.uow(tenant_id) as uow:
        if uow.users.by_email(email):
            raise Conflict(f"a user {email} exists in this tenant")
        uow.users.add(user, salesforce_org_id=salesforce_identity[0] if salesforce_identity else None)
        uow.commit()
    return user


def authenticate(rt: Runtime, email: str, password: str) -> User | None:
    """Local sign-in. The same email may exist in several tenants: the password decides which."""
    try:
        email = normalise_email(email)
    except InvalidInput:
        return None
    with rt.uow() as uow:
        for tenant_id, _user_id in uow.directory.tenant_for_user_email(email):
            user = uow.scope(tenant_id).users.by_email(email)
            if user and verify_password(password, user.password_hash):
                return user
    # Equalise timing for unknown emails so sign-in does not reveal who has an account.
    verify_password(password, "scrypt$16384$8$1$" + "00" * 16 + "$" + "00" * 32)
    return None


def create_api_key(rt: Runtime, tenant_id: str, name: str, actor: Actor) -> str:
    """Returns the key's plaintext: shown once, stored only as a hash."""
    if not name.strip():
        raise InvalidInput({"name": "name the key after the system that uses it"})
    issued = issue_api_key()
    key_id = rt.new_id()
    with rt.uow(tenant_id) as uow:
        uow.api_keys.add(key_id, name.strip(), issued.prefix, issued.hashed)
        uow.audit.append([AuditEntry(tenant_id, "api_key", key_id, "created", actor, rt.now(), None, {"name": name, "prefix": issued.prefix})])
        uow.commit()
    return issued.plaintext


def revoke_api_key(rt: Runtime, tenant_id: str, key_id: str, actor: Actor) -> None:
    with rt.uow(tenant_id) as uow:
        uow.api_keys.revoke(key_id)
        uow.audit.append([AuditEntry(tenant_id, "api_key", key_id, "revoked", actor, rt.now())])
        uow.commit()


def resolve_api_key(rt: Runtime, plaintext: str) -> tuple[str, str] | None:
    """(tenant_id, key_id) for a valid key, else None."""
    prefix = api_key_prefix(plaintext or "")
    if not prefix:
        return None
    with rt.uow() as uow:
        found = uow.directory.api_key(prefix)
        if not found or not hmac.compare_digest(found[2], hash_api_key(plaintext)):
            return None
        uow.directory.touch_api_key(found[1], rt.now())
        uow.commit()
        return found[0], found[1]


def get_tenant(rt: Runtime, tenant_id: str) -> Tenant:
    with rt.uow() as uow:
        return uow.tenants.get(tenant_id)
