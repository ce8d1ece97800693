"""API keys: created once and shown once, stored as an argon2id hash, revoked for good.

A key reads ``hm_<key id>_<secret>``. The key id is public: it finds the stored row, names the key in
the audit log and in ``harmmap keys list``. The secret is 32 random bytes and is never stored; only its
argon2id hash is (OWASP's recommendation for secrets at rest).

Hashing is deliberately slow (tens of milliseconds), so a key that verified once is remembered in
memory by a SHA-256 of the whole key; its row is still read on every request, so revocation and role
changes take effect at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import string
import threading
from collections import OrderedDict
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, text

from harmmap.access import Principal, Role, check_force_code
from harmmap.errors import InvalidParameterError, NotFoundError, UnauthenticatedError

KEY_PATTERN = re.compile(r"^hm_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
_KEY_ID_ALPHABET = string.ascii_lowercase + string.digits
_HASHER = PasswordHasher()


@dataclass(frozen=True)
class ApiKey:
    """A stored key's public description (never its secret)."""

    key_id: str
    role: Role
    force_code: str | None
    label: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class NewKey:
    """A key just created: ``token`` is shown to its holder once and cannot be recovered."""

    key: ApiKey
    token: str


def create_key(conn: Connection, role: Role, force_code: str | None, label: str = "") -> NewKey:
    """Store a new key for ``role`` (analysts need the force they belong to) and return its token."""
    check_force_code(force_code)
    if role == Role.ANALYST and force_code is None:
        raise InvalidParameterError(
            "force", "an analyst key belongs to a force: give --force, e.g. E23000030"
        )
    if role != Role.ANALYST and force_code is not None:
        raise InvalidParameterError("force", f"a {role} key is not tied to a force; leave --force out")
    if force_code is not None:
        known = conn.execute(
            text("SELECT 1 FROM areas WHERE level = 'force' AND code = :code"), {"code": force_code}
        ).first()
        if known is None:
            raise NotFoundError(f"no force {force_code} in the store", parameter="force")
    if len(label) > 200:
        raise InvalidParameterError("label", "a label is at most 200 characters")
    key_id = "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(12))
    secret = secrets.token_urlsafe(32)
    row = conn.execute(
        text(
            "INSERT INTO api_keys (key_id, secret_hash, role, force_code, label) "
            "VALUES (:key_id, :hash, :role, :force, :label) RETURNING created_at"
        ),
        {
            "key_id": key_id,
            "hash": _HASHER.hash(secret),
            "role": str(role),
            "force": force_code,
            "label": label,
        },
    ).one()
    key = ApiKey(key_id, role, force_code, label, row.created_at, None)
    return NewKey(key, f"hm_{key_id}_{secret}")


def revoke_key(conn: Connection, key_id: str) -> ApiKey:
    """Revoke a key for good; revoking it again is a no-op that reports the first revocation."""
    conn.execute(
        text("UPDATE api_keys SET revoked_at = now() WHERE key_id = :id AND revoked_at IS NULL"),
        {"id": key_id},
    )
    found = _key_row(conn, key_id)
    if found is None:
        raise NotFoundError(f"no API key {key_id!r}", parameter="key_id")
    return found[0]


def list_keys(conn: Connection) -> list[ApiKey]:
    """Every key ever created, newest first, revoked ones included."""
    rows = conn.execute(
        text(
            "SELECT key_id, role, force_code, label, created_at, revoked_at FROM api_keys "
            "ORDER BY created_at DESC, key_id"
        )
    )
    return [ApiKey(r.key_id, Role(r.role), r.force_code, r.label, r.created_at, r.revoked_at) for r in rows]


def _key_row(conn: Connection, key_id: str) -> tuple[ApiKey, str] | None:
    row = conn.execute(
        text(
            "SELECT key_id, secret_hash, role, force_code, label, created_at, revoked_at "
            "FROM api_keys WHERE key_id = :id"
        ),
        {"id": key_id},
    ).first()
    if row is None:
        return None
    key = ApiKey(row.key_id, Role(row.role), row.force_code, row.label, row.created_at, row.revoked_at)
    return key, str(row.secret_hash)


class KeyVerifier:
    """Checks presented keys against the store, remembering the slow argon2 verifications."""

    def __init__(self, remember: int = 1024) -> None:
        self._verified: OrderedDict[bytes, str] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()

    def principal(self, conn: Connection, token: str) -> Principal:
        """The principal of a valid, unrevoked key; UnauthenticatedError otherwise."""
        match = KEY_PATTERN.match(token)
        if match is None:
            raise UnauthenticatedError("the API key is malformed: expected hm_<key id>_<secret>")
        key_id, secret = match.groups()
        found = _key_row(conn, key_id)
        if found is None:
            raise UnauthenticatedError("the API key is not valid")
        key, secret_hash = found
        if key.revoked_at is not None:
            raise UnauthenticatedError(f"API key {key_id} was revoked")
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            known = self._verified.get(digest) == key_id
            if known:
                self._verified.move_to_end(digest)
        if not known:
            try:
                _HASHER.verify(secret_hash, secret)
            except (VerificationError, InvalidHashError):
                raise UnauthenticatedError("the API key is not valid") from None
            with self._lock:
                self._verified[digest] = key_id
                while len(self._verified) > self._remember:
                    self._verified.popitem(last=False)
        return Principal(subject=f"key:{key_id}", role=key.role, force_code=key.force_code)
