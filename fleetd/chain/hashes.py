"""SHA-256 and Bitcoin's double SHA-256 (hashlib; OpenSSL uses SHA-NI where the CPU has it)."""

from __future__ import annotations

from hashlib import sha256 as _sha256


def sha256(data: bytes) -> bytes:
    """Single SHA-256 digest."""
    return _sha256(data).digest()


def sha256d(data: bytes) -> bytes:
    """SHA-256 of SHA-256, in the order the digest comes out (internal byte order)."""
    return _sha256(_sha256(data).digest()).digest()
