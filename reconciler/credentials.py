"""Passwords stay on the requester's machine; only their verifiers travel through git."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def new_password(length: int = 32) -> str:
    """A strong random password of URL-safe characters (no quoting trouble in any client)."""
    return secrets.token_urlsafe(length)[:length]


def scram_sha256_verifier(password: str, iterations: int = 4096, salt: bytes | None = None) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier: SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>.

    `password` should be ASCII (new_password makes it so): SASLprep is then the identity."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return (f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:"
            f"{_b64(server_key)}")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def mysql_native_verifier(password: str) -> str:
    """MySQL's mysql_native_password hash: '*' + upper-case hex SHA1(SHA1(password))."""
    inner = hashlib.sha1(password.encode()).digest()  # noqa: S324 - the protocol's own hash
    return "*" + hashlib.sha1(inner).hexdigest().upper()  # noqa: S324

