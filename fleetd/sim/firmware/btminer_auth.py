"""The btminer API's write access (Whatsminer API 2.0.x): tokens, MD5-crypt keys and AES.

A client asks ``get_token`` in plain JSON and gets ``time`` (the last four digits of the
Unix time), ``salt`` (of the rig's stored admin password) and ``newsalt`` (fresh for each
token). With the admin password it derives

    key  = md5crypt(password, salt)          the hash part after ``$1$salt$``
    sign = md5crypt(key + time, newsalt)     the token it puts in every command
    aes  = sha256(key)                       AES-256-ECB; plaintext padded with NULs to 16 bytes

and sends ``{"enc": 1, "data": base64(aes(json command with "token": sign))}``. The rig
answers ``{"enc": base64(aes(json reply))}``. One client address may hold 32 live tokens;
a token lives 30 minutes (here: on the rig's clock).

A wrong password makes a different key: the rig's decryption yields no JSON and it answers
in plain JSON, code 23 ``enc json load err``, as firmware does.

AES comes from ``cryptography``, which pyasic (a fleetd dependency) requires; MD5-crypt is
written out here (the ``crypt`` module is gone from Python 3.13).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fleetd.clock import Clock

ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MAGIC = b"$1$"
TOKEN_LIFETIME_S = 30 * 60
TOKENS_PER_CLIENT = 32
AES_BLOCK = 16


def md5_crypt(password: str, salt: str) -> str:
    """The hash part of ``$1$salt$hash`` (FreeBSD MD5-crypt, as ``openssl passwd -1``)."""
    pw, salt_b = password.encode(), salt.encode()[:8]
    alternate = hashlib.md5(pw + salt_b + pw).digest()
    ctx = hashlib.md5(pw + MAGIC + salt_b)
    for i in range(len(pw), 0, -16):
        ctx.update(alternate[: min(16, i)])
    i = len(pw)
    while i:
        ctx.update(b"\0" if i & 1 else pw[:1])
        i >>= 1
    final = ctx.digest()
    for i in range(1000):
        step = hashlib.md5(pw if i & 1 else final)
        if i % 3:
            step.update(salt_b)
        if i % 7:
            step.update(pw)
        step.update(final if i & 1 else pw)
        final = step.digest()
    out = []
    for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        out.append(_to64((final[a] << 16) | (final[b] << 8) | final[c], 4))
    out.append(_to64(final[11], 2))
    return "".join(out)


def _to64(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(ITOA64[value & 0x3F])
        value >>= 6
    return "".join(chars)


def _cipher(key: str) -> Cipher:
    return Cipher(algorithms.AES(hashlib.sha256(key.encode()).digest()), modes.ECB())


def encrypt(key: str, message: dict[str, Any]) -> str:
    """A reply as the ``enc`` field carries it."""
    plain = json.dumps(message, separators=(",", ":")).encode()
    plain += b"\0" * (-len(plain) % AES_BLOCK)
    encryptor = _cipher(key).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


class DecodeError(ValueError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def decrypt(key: str, data: Any) -> dict[str, Any]:
    """The command in a request's ``data``; DecodeError(137) for bad base64, (23) for anything else."""
    if not isinstance(data, str):
        raise DecodeError(23, "enc json load err")
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        raise DecodeError(137, "base64 decode err") from None
    if not raw or len(raw) % AES_BLOCK:
        raise DecodeError(23, "enc json load err")
    decryptor = _cipher(key).decryptor()
    plain = (decryptor.update(raw) + decryptor.finalize()).rstrip(b"\0")
    try:
        command = json.loads(plain)
    except (UnicodeDecodeError, ValueError):
        raise DecodeError(23, "enc json load err") from None
    if not isinstance(command, dict):
        raise DecodeError(23, "enc json load err")
    return command


@dataclass
class TokenIssuer:
    """The tokens one rig has handed out, per client address."""

    clock: Clock
    salt: str  # of the rig's stored admin password: fixed per rig
    _live: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # client -> (sign, issued)

    def issue(self, client: str, password: str) -> dict[str, str] | None:
        """``get_token``'s ``Msg`` for ``client``; None once it holds its 32 live tokens."""
        live = self._prune(client)
        if len(live) >= TOKENS_PER_CLIENT:
            return None
        time = f"{int(self.clock.wall()) % 10_000:04d}"
        newsalt = "".join(secrets.choice(ITOA64) for _ in range(8))
        live.append((md5_crypt(self.key(password) + time, newsalt), self.clock.monotonic()))
        return {"time": time, "salt": self.salt, "newsalt": newsalt}

    def valid(self, client: str, sign: Any) -> bool:
        return isinstance(sign, str) and any(s == sign for s, _ in self._prune(client))

    def key(self, password: str) -> str:
        return md5_crypt(password, self.salt)

    def _prune(self, client: str) -> list[tuple[str, float]]:
        now = self.clock.monotonic()
        live = [(s, t) for s, t in self._live.get(client, []) if now - t < TOKEN_LIFETIME_S]
        self._live[client] = live
        return live
