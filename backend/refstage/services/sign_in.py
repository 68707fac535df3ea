"""Console sign-in: local passwords with throttling, and server-side sessions.

Throttling: failed attempts are counted per account (keyed hash of the email) and per address (keyed
hash of the client IP). After a few free failures each further one locks that key for an exponentially
growing time (30 s, 60 s, … up to 15 minutes). While a key is locked no password is checked at all, so
the right password does not get in either; the first lock of an account is written to the audit log of
every tenant that has a user with that email. A success clears the account's count (not the address's:
an attacker's own account must not reset the count of the address it guesses from).

Sessions: signing in stores a row (the hash of a random token; the token rides in the signed cookie).
Every console request checks the row (one primary-key read). Signing out deletes it; a password change
deletes all of the user's rows, so a cookie captured earlier opens nothing afterwards."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from refstage.domain.audit import Actor, AuditEntry
from refstage.domain.errors import InvalidInput, NotFound
from refstage.domain.referrals import normalise_email
from refstage.domain.tenants import User, hash_password, verify_password
from refstage.services import protection, tenants
from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)

ACCOUNT_FREE_FAILURES = 5
ADDRESS_FREE_FAILURES = 20  # offices share one address; an address lock is a coarse second line
BASE_LOCK_SECONDS = 30
MAX_LOCK_SECONDS = 15 * 60
FORGET_FAILURES_AFTER = dt.timedelta(hours=24)
SESSION_TTL = dt.timedelta(hours=12)


def lock_seconds(failures: int, free: int) -> int:
    """0 below the free allowance, then 30 s doubling per further failure, capped at 15 minutes."""
    if failures < free:
        return 0
    return min(BASE_LOCK_SECONDS * 2 ** min(failures - free, 20), MAX_LOCK_SECONDS)


@dataclass(frozen=True)
class SignIn:
    user: User | None = None
    retry_after: int | None = None  # set when the account or the address is locked


def _keys(rt: Runtime, email: str, client: str) -> tuple[str, str]:
    account = "acct:" + protection.client_fingerprint(rt, email.strip().lower()[:254])
    address = "addr:" + protection.client_fingerprint(rt, client or "unknown")
    return account, address


def sign_in(rt: Runtime, email: str, password: str, client: str) -> SignIn:
    account, address = _keys(rt, email, client)
    now = rt.now()
    with rt.uow(readonly=True) as uow:
        until = uow.login_throttle.locked_until([account, address], now)
    if until is not None:
        return SignIn(retry_after=max(1, int((until - now).total_seconds() + 0.999)))
    user = tenants.authenticate(rt, email, password)
    if user is not None:
        with rt.uow() as uow:
            uow.login_throttle.clear(account)
            uow.commit()
        return SignIn(user=user)
    _record_failure(rt, email, account, address, client)
    return SignIn()


def _record_failure(rt: Runtime, email: str, account: str, address: str, client: str) -> None:
    now = rt.now()
    with rt.uow() as uow:
        throttle = uow.login_throttle
        failures = {key: throttle.add_failure(key, now, now - FORGET_FAILURES_AFTER) for key in (account, address)}
        locks = {account: lock_seconds(failures[account], ACCOUNT_FREE_FAILURES),
                 address: lock_seconds(failures[address], ADDRESS_FREE_FAILURES)}
        for key, seconds in locks.items():
            if seconds:
                throttle.lock(key, now + dt.timedelta(seconds=seconds))
        if locks[account]:
            _audit_lock(uow, email, failures[account], locks[account], now, client and protection.client_fingerprint(rt, client))
        if failures[address] == ADDRESS_FREE_FAILURES:
            log.warning("console sign-in locked for an address after %s failures", failures[address])
        if secrets.randbelow(50) == 0:
            throttle.remove_stale(now - FORGET_FAILURES_AFTER)  # now and then, forget old counts
        uow.commit()


def _audit_lock(uow, email: str, failures: int, seconds: int, now: dt.datetime, client: str | None) -> None:
    try:
        address = normalise_email(email)
    except InvalidInput:
        return  # not an address anyone could have: nothing to audit
    accounts = uow.directory.tenant_for_user_email(address)
    for tenant_id, user_id in accounts:
        uow.scope(tenant_id).audit.append([AuditEntry(
            tenant_id, "user", user_id, "sign_in_locked", Actor.system("login throttle"), now, None,
            {"failures": failures, "locked_seconds": seconds, "client": client})])
    log.warning("console sign-in locked for %s s after %s failures (%s account(s))", seconds, failures, len(accounts))


# --- Sign in with Salesforce --------------------------------------------------------------------------------
def salesforce_app(rt: Runtime) -> Any:
    """The Salesforce connected app (client id and secret, and `hosts`: where its secret may go); a
    CrmError when it is not configured."""
    return rt.salesforce.OAuthApp.from_settings(rt.settings)


def salesforce_login_host(rt: Runtime, app: Any, value: str | None) -> str:
    """`production`, `sandbox` or an allowed My Domain URL as the origin to sign in at; ValueError otherwise."""
    return rt.salesforce.login_host_url(value, app.hosts)


def salesforce_accounts(rt: Runtime, org_id: str, salesforce_user_id: str) -> list[dict[str, str]]:
    """The Refstage users an admin linked to this Salesforce identity, one per workspace:
    [{"tenant_id", "user_id", "tenant", "email"}]. Nobody is created by signing in."""
    with rt.uow(readonly=True) as uow:
        matches = uow.directory.users_for_salesforce_identity(org_id, salesforce_user_id)
        # Salesforce ids come in 15- and 18-character forms: accept a link stored in either.
        if not matches and len(org_id) == 18 and len(salesforce_user_id) == 18:
            matches = uow.directory.users_for_salesforce_identity(org_id[:15], salesforce_user_id[:15])
        accounts = []
        for tid, uid in matches:
            user = uow.scope(tid).users.get(uid)
            accounts.append({"tenant_id": tid, "user_id": uid, "tenant": uow.tenants.get(tid).name, "email": user.email})
    return accounts


def account_user(rt: Runtime, tenant_id: str, user_id: str) -> User:
    """The user behind one of `salesforce_accounts`, to open a session for."""
    with rt.uow(tenant_id, readonly=True) as uow:
        return uow.users.get(user_id)


# --- sessions ---------------------------------------------------------------------------------------------
def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(rt: Runtime, user: User) -> str:
    """A new server-side session for `user`; returns the token the cookie carries."""
    token = secrets.token_urlsafe(32)
    now = rt.now()
    with rt.uow(user.tenant_id) as uow:
        uow.admin_sessions.add(_session_id(token), user.id, now, now + SESSION_TTL)
        if secrets.randbelow(50) == 0:
            uow.admin_sessions.remove_expired(now)
        uow.commit()
    return token


def session_user(rt: Runtime, tenant_id: str, user_id: str, token: str | None) -> tuple[User, object] | None:
    """The signed-in user and tenant when the session is still open, else None."""
    if not token:
        return None
    try:
        with rt.uow(tenant_id, readonly=True) as uow:
            if not uow.admin_sessions.is_active(_session_id(token), user_id, rt.now()):
                return None
            return uow.users.get(user_id), uow.tenants.get(tenant_id)
    except NotFound:
        return None


def end_session(rt: Runtime, tenant_id: str, token: str | None) -> None:
    if not token:
        return
    with rt.uow(tenant_id) as uow:
        uow.admin_sessions.remove(_session_id(token))
        uow.commit()


def change_password(rt: Runtime, tenant_id: str, user_id: str, current: str, new: str, actor: Actor) -> None:
    """Checks the current password, stores the new one, and ends every session of the user (all devices)."""
    with rt.uow(tenant_id) as uow:
        user = uow.users.get(user_id)
        if user.password_hash and not verify_password(current, user.password_hash):
            raise InvalidInput({"current_password": "that is not your current password"})
        uow.users.set_password_hash(user_id, hash_password(new))
        ended = uow.admin_sessions.remove_for_user(user_id)
        uow.audit.append([AuditEntry(tenant_id, "user", user_id, "password_changed", actor, rt.now(), None,
                                     {"sessions_ended": ended})])
        uow.commit()
