"""Tenants, their users and API keys. Everything else belongs to exactly one tenant."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from refstage.domain.errors import InvalidInput

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


class Role(StrEnum):
    ADMIN = "admin"
    REVIEWER = "reviewer"


@dataclass
class Tenant:
    id: str
    name: str
    slug: str
    display_name: str | None = None  # how advocates and friends know the company; `name` if unset
    logo_url: str | None = None  # https only
    brand_color: str | None = None  # #rrggbb, the default for programs without their own colour
    locale: str | None = None  # e.g. en_US, de_DE: money and dates in the console
    time_zone: str | None = None  # IANA name, e.g. Europe/Berlin

    @property
    def company_name(self) -> str:
        return self.display_name or self.name

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidInput({"name": "a tenant needs a name"})
        if not _SLUG.match(self.slug):
            raise InvalidInput({"slug": "lowercase letters, digits and dashes"})


@dataclass
class User:
    id: str
    tenant_id: str
    email: str
    role: Role
    password_hash: str | None = None
    name: str = ""
    salesforce_user_id: str | None = None

    def can_review(self) -> bool:
        return self.role in (Role.ADMIN, Role.REVIEWER)

    def can_administer(self) -> bool:
        return self.role == Role.ADMIN


# Passwords: scrypt from the standard library, parameters stored with the hash.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise InvalidInput({"password": "at least 8 characters"})
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(candidate.hex(), digest)


# API keys: shown once as "rs_<prefix>_<secret>", stored as prefix + SHA-256 of the whole key.
# A fast hash is right here: the secret has 256 bits of entropy, unlike a password.
@dataclass(frozen=True)
class IssuedApiKey:
    prefix: str
    plaintext: str
    hashed: str


def issue_api_key() -> IssuedApiKey:
    prefix = secrets.token_hex(4)
    plaintext = f"rs_{prefix}_{secrets.token_urlsafe(32)}"
    return IssuedApiKey(prefix, plaintext, hash_api_key(plaintext))


def hash_api_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def api_key_prefix(plaintext: str) -> str | None:
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != "rs" or not parts[1]:
        return None
    return parts[1]
