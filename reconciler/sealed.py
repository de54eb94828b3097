"""Sealed delivery: a password `apply` makes and commits encrypted to the grantee's public keys.

The only module that imports the encryption library (pyrage, age's format): keys are parsed,
passwords sealed and opened here, and nowhere else. No cryptography is written here; a key is
handed to pyrage as the person published it (SSH ed25519/RSA, or an age recipient).

A sealed file, `sealed/<target>/<login>.yaml`, holds the ASCII-armored age ciphertext of the
login's password, the grant file it was made for, the run that made it, and the password's
verifier (not secret in this project's model: grant files carry verifiers). See sealing.py for
when apply trusts, keeps, rotates and removes one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
import yaml
from pyrage import ssh, x25519

from .errors import UserError

KEYS_LIMIT = 32  # more keys than anyone has: a list longer than this is refused, not sealed to
KEY_CHARS = 16384  # the schema's limit; an RSA-16384 public key is under 3,000 characters
SEALED_FILE_BYTES = 256 * 1024  # a sealed file larger than this is not read (not ours)
_PRIVATE_MARKS = ("PRIVATE KEY", "AGE-SECRET-KEY-")
SUPPORTED = "ssh-ed25519 or ssh-rsa public keys (as GitHub publishes them) or age1 recipients"


def key_problem(text: str) -> str | None:
    """Why `text` cannot be a recipient, in our words, never echoing it; None when it can."""
    if any(mark in text.upper() for mark in _PRIVATE_MARKS):
        return ("this is a PRIVATE key: remove it from the repository and its history, and "
                "replace the key everywhere it is used, it is no longer secret")
    kind = text.strip().split(" ", 1)[0]
    if kind == "ssh-dss":
        return f"DSA keys are not supported: use {SUPPORTED}"
    if kind.startswith(("ecdsa-", "sk-")):
        return f"{kind.split('-')[0].upper()} keys are not supported: use {SUPPORTED}"
    try:
        _recipient(text)
    except (pyrage.RecipientError, ValueError):
        return f"not a public key this can encrypt to: use {SUPPORTED}"
    return None


def _recipient(text: str) -> Any:
    text = text.strip()
    if text.startswith("age1"):
        return x25519.Recipient.from_str(text)
    return ssh.Recipient.from_str(text)


def seal(password: str, keys: tuple[str, ...]) -> str:
    """The password encrypted to every key, ASCII-armored. Keys were checked by validate."""
    if not keys or len(keys) > KEYS_LIMIT:
        raise UserError(f"cannot seal to {len(keys)} keys (1 to {KEYS_LIMIT})")
    recipients = [_recipient(k) for k in keys]
    return bytes(pyrage.encrypt(password.encode(), recipients, armored=True)).decode("ascii")


@dataclass(frozen=True)
class SealedFile:
    """One `sealed/<target>/<login>.yaml`, as written or read."""

    target: str
    login: str
    grantee: str
    grant: str
    run: str
    verifier: str
    ciphertext: str

    def dump(self) -> bytes:
        head = (f"# Written by jitgrant apply: the password of {self.login} on {self.target},\n"
                f"# encrypted to people.{self.grantee}.keys. Open it with jitgrant connect.\n")
        body = {"target": self.target, "login": self.login, "grantee": self.grantee,
                "grant": self.grant, "run": self.run, "verifier": self.verifier}
        block = "".join(f"  {line}\n" for line in self.ciphertext.strip().splitlines())
        return (head + yaml.safe_dump(body, sort_keys=False, width=200)
                + "password: |\n" + block).encode()


def sealed_path(target: str, login: str) -> str:
    return f"sealed/{target}/{login}.yaml"


def parse_file(data: bytes) -> SealedFile | None:
    """A sealed file's fields, or None when it is not one of ours in shape (too large, not
    YAML, a field missing or not text): apply then treats the login as having none."""
    if len(data) > SEALED_FILE_BYTES:
        return None
    try:
        loaded = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        return None
    names = ("target", "login", "grantee", "grant", "run", "verifier", "password")
    if not isinstance(loaded, dict) or not all(isinstance(loaded.get(n), str) for n in names):
        return None
    return SealedFile(loaded["target"], loaded["login"], loaded["grantee"], loaded["grant"],
                      loaded["run"], loaded["verifier"], loaded["password"])


def default_identities(home: Path | None = None) -> list[Path]:
    """The usual SSH private keys, in the order ssh tries them."""
    folder = (home or Path.home()) / ".ssh"
    return [folder / "id_ed25519", folder / "id_rsa"]


def read_identity(path: Path) -> Any:
    """The SSH private key at `path` (or an age identity file), or one line saying why not."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the key: {exc.strerror}") from None
    if data.lstrip().startswith(b"AGE-SECRET-KEY-"):
        try:
            return x25519.Identity.from_str(data.decode("ascii").strip())
        except (pyrage.IdentityError, UnicodeDecodeError, ValueError):
            raise UserError(f"{path}: not an age identity this can read") from None
    try:
        return ssh.Identity.from_buffer(data)
    except (pyrage.IdentityError, ValueError):
        raise UserError(f"{path}: not an unencrypted ssh-ed25519 or ssh-rsa private key "
                        "(a key with a passphrase: use a copy without one, or an age "
                        "identity)") from None


def open_sealed(sealed: SealedFile, identity: Any, shown: Path) -> str:
    """The password, or one line: this key is not one it was sealed to."""
    try:
        plain = pyrage.decrypt(sealed.ciphertext.encode("ascii"), [identity])
    except (pyrage.DecryptError, UnicodeEncodeError, ValueError):
        raise UserError(f"{shown} cannot open the sealed password of {sealed.login}: it was "
                        f"sealed to the keys in people.{sealed.grantee}.keys when the grant "
                        "was applied; use one of those with --identity") from None
    try:
        return bytes(plain).decode("ascii")
    except UnicodeDecodeError:
        raise UserError(f"the sealed password of {sealed.login} is not one jitgrant made: "
                        "ask an operator to run apply again") from None
