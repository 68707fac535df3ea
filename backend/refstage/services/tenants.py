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
             name: str = "", salesforce_identity: tuple[str, str] | None = None, actor: Actor | None = None) -> User:
    """`actor`: the person adding the user, for the audit log (set-up commands and the demo add users unaudited)."""
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
        if actor is not None:
            uow.audit.append([AuditEntry(tenant_id, "user", user.id, "created", actor, rt.now(), None,
                                         {"email": user.email, "role": user.role.value, "salesforce": bool(salesforce_identity)})])
        uow.commit()
    return user


def audit_log(rt: Runtime, tenant_id: str, **filters) -> list[AuditEntry]:
    """The tenant's audit entries (AuditRepository.list filters: entity, actor, since/until, limit/offset)."""
    with rt.uow(tenant_id, readonly=True) as uow:
        return uow.audit.list(**filters)


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


def tenant_by_slug(rt: Runtime, slug: str) -> Tenant | None:
    with rt.uow() as uow:
        return uow.tenants.by_slug(slug)


# --- company identity --------------------------------------------------------------------------------
_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_LOCALE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")
_IDENTITY_TTL = 60.0
_identity_cache: dict[str, tuple[float, Tenant]] = {}


def update_identity(rt: Runtime, tenant_id: str, data: dict, actor: Actor) -> Tenant:
    """The company's display name, logo (https), colour, and the console's locale and time zone;
    every field's problem reported at once."""
    import dataclasses
    from urllib.parse import urlsplit
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    clean = {k: " ".join(str(data.get(k) or "").split()) or None
             for k in ("display_name", "logo_url", "brand_color", "locale", "time_zone")}
    errors: dict[str, str] = {}
    if clean["display_name"] and len(clean["display_name"]) > 200:
        errors["display_name"] = "at most 200 characters"
    if clean["logo_url"]:
        parts = urlsplit(clean["logo_url"])
        if parts.scheme != "https" or not parts.hostname or parts.username or parts.password or len(clean["logo_url"]) > 500:
            errors["logo_url"] = "an https:// address of the image (PNG, SVG or JPEG), at most 500 characters"
    if clean["brand_color"] and not _HEX_COLOR.match(clean["brand_color"]):
        errors["brand_color"] = "a colour as #rrggbb, e.g. #0b5cab"
    if clean["locale"] and not _LOCALE.match(clean["locale"]):
        errors["locale"] = "a locale such as en_US, en_GB, de_DE or fr_FR"
    elif clean["locale"]:
        from babel import Locale, UnknownLocaleError

        try:
            Locale.parse(clean["locale"])
        except (UnknownLocaleError, ValueError):
            errors["locale"] = "a locale such as en_US, en_GB, de_DE or fr_FR"
    if clean["time_zone"]:
        try:
            ZoneInfo(clean["time_zone"])
        except (ZoneInfoNotFoundError, ValueError):
            errors["time_zone"] = "a time zone such as Europe/Berlin or America/New_York"
    if errors:
        raise InvalidInput(errors)
    with rt.uow(tenant_id) as uow:
        before = uow.tenants.get(tenant_id)
        after = dataclasses.replace(before, **clean)
        uow.tenants.save_identity(after)
        fields = ("display_name", "logo_url", "brand_color", "locale", "time_zone")
        uow.audit.append([AuditEntry(tenant_id, "tenant", tenant_id, "identity_updated", actor, rt.now(),
                                     {k: getattr(before, k) for k in fields}, {k: getattr(after, k) for k in fields})])
        uow.commit()
    _identity_cache.pop(tenant_id, None)
    return after


def identity(rt: Runtime, tenant_id: str) -> Tenant:
    """The tenant as public pages and emails show it; cached a minute per process (the landing page
    is on the hot path, and a renamed company may show its old name for that long)."""
    import time

    hit = _identity_cache.get(tenant_id)
    if hit and time.monotonic() - hit[0] < _IDENTITY_TTL:
        return hit[1]
    with rt.uow(tenant_id, readonly=True) as uow:
        tenant = uow.tenants.get(tenant_id)
    _identity_cache[tenant_id] = (time.monotonic(), tenant)
    return tenant
