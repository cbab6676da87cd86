"""The native SHA-256d share core: bytes in, bytes out, bad arguments as exceptions.

Hashes are in internal byte order, as sha256d returns them; prevhash and merkle
branch hashes exactly as they stand inside a block. ``IMPL`` names the active
implementation: ``"shani"`` (x86 SHA extensions, chosen by CPUID) or
``"portable"``. ``FLEETD_NATIVE=portable`` in the environment forces the latter; a value
this CPU cannot run fails the import with a ValueError that names the variable.
"""

from __future__ import annotations

import os
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from fleetd._native import ffi, lib
from fleetd.chain.target import bits_to_target

_IMPLS = {"portable": lib.FLEETD_IMPL_PORTABLE, "shani": lib.FLEETD_IMPL_SHANI}
HASH_SIZE = 32
MAX_BRANCH = lib.FLEETD_MAX_BRANCH
MAX_EXTRANONCE = lib.FLEETD_MAX_EXTRANONCE
MAX_COINBASE = lib.FLEETD_MAX_COINBASE
_U32 = 0xFFFFFFFF
_FLAG_VALUES = range((lib.FLEETD_MEETS_TARGET | lib.FLEETD_MEETS_NETWORK) + 1)
_MEETS_TARGET = tuple(bool(flags & lib.FLEETD_MEETS_TARGET) for flags in _FLAG_VALUES)  # indexed by flags
_MEETS_NETWORK = tuple(bool(flags & lib.FLEETD_MEETS_NETWORK) for flags in _FLAG_VALUES)
_check = lib.fleetd_check  # one lookup saved per share
_TARGET_LIMIT = 1 << 256

IMPL: str = "portable"
ENVIRONMENT = "FLEETD_NATIVE"


def available() -> tuple[str, ...]:
    """The implementations this CPU can run, best last."""
    return tuple(name for name, code in _IMPLS.items() if lib.fleetd_impl_available(code))


def select(name: str | None = None) -> str:
    """Make ``name`` (or the best available, for None/"auto") the active implementation."""
    global IMPL
    if name in (None, "", "auto"):
        code = lib.FLEETD_IMPL_BEST
    elif name in _IMPLS:
        code = _IMPLS[name]
    else:
        raise ValueError(f"unknown native implementation {name!r}; choose one of {', '.join(_IMPLS)} or auto")
    if lib.fleetd_select(code) != 0:
        raise ValueError(f"native implementation {name!r} is not supported by this CPU; available: {available()}")
    IMPL = ffi.string(lib.fleetd_impl_name()).decode()
    return IMPL


def sha256(data: bytes) -> bytes:
    """Single SHA-256 through the active implementation (for known-answer tests)."""
    out = ffi.new("uint8_t[32]")
    lib.fleetd_sha256(_buffer(data, "data"), len(data), out)
    return ffi.buffer(out)[:]


def sha256d(data: bytes) -> bytes:
    out = ffi.new("uint8_t[32]")
    lib.fleetd_sha256d(_buffer(data, "data"), len(data), out)
    return ffi.buffer(out)[:]


def encode_target(target: int) -> bytes:
    """A 256-bit target in the 32-byte little-endian form ``check_batch`` takes."""
    if not isinstance(target, int) or isinstance(target, bool):
        raise TypeError(f"target must be an int, got {type(target).__name__}")
    if not 0 <= target < _TARGET_LIMIT:
        raise ValueError("target must be between 0 and 2**256 - 1")
    return target.to_bytes(HASH_SIZE, "little")


class ShareCheck(NamedTuple):  # a tuple: cheaper to build than a dataclass on the hot path
    hash: bytes
    meets_target: bool
    meets_network: bool


_tuple_new = tuple.__new__

@dataclass(frozen=True, slots=True)
class BatchCheck:
    """Results of ``check_batch``: share i's hash is ``hashes[32*i:32*i+32]``."""

    hashes: bytes
    flags: bytes

    def __len__(self) -> int:
        return len(self.flags)

    def hash(self, i: int) -> bytes:
        return self.hashes[HASH_SIZE * i : HASH_SIZE * (i + 1)]

    def meets_target(self, i: int) -> bool:
        return bool(self.flags[i] & lib.FLEETD_MEETS_TARGET)

    def meets_network(self, i: int) -> bool:
        return bool(self.flags[i] & lib.FLEETD_MEETS_NETWORK)


class PreparedJob:
    """One job prepared in C: the coinb1 midstate, coinbase tail and header template.

    ``extranonce`` arguments are extranonce1 ‖ extranonce2, ``extranonce_size`` bytes.
    """

    __slots__ = ("_job", "extranonce_size")

    def __init__(
        self,
        coinb1: bytes,
        coinb2: bytes,
        merkle_branch: Sequence[bytes],
        prevhash: bytes,
        nbits: int,
        extranonce_size: int,
    ) -> None:
        coinb1 = _buffer(coinb1, "coinb1")
        coinb2 = _buffer(coinb2, "coinb2")
        prevhash = _buffer(prevhash, "prevhash", HASH_SIZE)
        nbits = _u32(nbits, "nbits")
        if not isinstance(extranonce_size, int) or not 0 <= extranonce_size <= MAX_EXTRANONCE:
            raise ValueError(f"extranonce size must be 0..{MAX_EXTRANONCE} bytes, got {extranonce_size!r}")
        if len(coinb1) + extranonce_size + len(coinb2) > MAX_COINBASE:
            raise ValueError(f"coinbase longer than {MAX_COINBASE} bytes")
        branch = _branch(merkle_branch)
        network_target = bits_to_target(nbits).to_bytes(HASH_SIZE, "little")
        err = ffi.new("int *")
        job = lib.fleetd_job_new(
            coinb1, len(coinb1), extranonce_size, coinb2, len(coinb2),
            branch, len(branch) // HASH_SIZE, prevhash, nbits, network_target, err,
        )  # fmt: skip
        if job == ffi.NULL:
            raise MemoryError("no memory for a native job") if err[0] == lib.FLEETD_ERR_NOMEM else ValueError(
                "job fields out of range"
            )
        self._job = ffi.gc(job, lib.fleetd_job_free)
        self.extranonce_size = extranonce_size

    def check(self, extranonce: bytes, version: int, ntime: int, nonce: int, target: int | bytes) -> ShareCheck:
        """The share's hash and whether it meets ``target`` and the job's network target.

        ``target`` is an int or its ``encode_target`` form (cheaper on a hot path).
        """
        if type(target) is not bytes or len(target) != HASH_SIZE:
            target = encode_target(target)
        try:
            out, view = _thread_scratch.hash
        except AttributeError:
            out, view = _scratch_hash()
        try:
            flags = _check(self._job, extranonce, len(extranonce), version, ntime, nonce, target, out)
        except (OverflowError, TypeError) as exc:
            raise _field_error([(extranonce, version, ntime, nonce)]) from exc
        if flags < 0:
            raise ValueError(f"extranonce must be {self.extranonce_size} bytes, got {len(extranonce)}")
        # tuple.__new__ skips NamedTuple's Python-level __new__; the tables turn flags into bools
        return _tuple_new(ShareCheck, (view[:], _MEETS_TARGET[flags], _MEETS_NETWORK[flags]))

    def check_batch(self, shares: Sequence[tuple[bytes, int, int, int]], targets: Sequence[bytes]) -> BatchCheck:
        """Check many shares of this job in one crossing into C.

        ``shares`` holds ``(extranonce, version, ntime, nonce)`` tuples; ``targets`` holds
        one target per share in ``encode_target`` form (cache it per difficulty). Shares
        are hashed two at a time, interleaved, on the SHA-NI path.
        """
        n = len(shares)
        if len(targets) != n:
            raise ValueError(f"{n} shares but {len(targets)} targets")
        if n == 0:
            return BatchCheck(b"", b"")
        try:
            extranonces, versions, ntimes, nonces = zip(*shares)
        except (TypeError, ValueError):
            raise TypeError("each share must be an (extranonce, version, ntime, nonce) tuple") from None
        size = self.extranonce_size
        if set(map(len, extranonces)) != {size}:
            raise ValueError(f"every extranonce must be {size} bytes (extranonce1 + extranonce2)")
        if set(map(len, targets)) != {HASH_SIZE}:
            raise ValueError("every target must be 32 bytes; use encode_target()")
        try:
            fields = [ffi.from_buffer("uint32_t[]", array("I", column)) for column in (versions, ntimes, nonces)]
            joined = b"".join(extranonces)
            all_targets = b"".join(targets)
        except (OverflowError, TypeError) as exc:
            raise _field_error(shares) from exc
        hashes = ffi.new("uint8_t[]", HASH_SIZE * n)
        flags = ffi.new("uint8_t[]", n)
        lib.fleetd_check_batch(self._job, n, joined, size, *fields, all_targets, hashes, flags)
        return BatchCheck(ffi.buffer(hashes)[:], ffi.buffer(flags)[:])


def header_hash(
    coinb1: bytes,
    extranonce1: bytes,
    extranonce2: bytes,
    coinb2: bytes,
    merkle_branch: Sequence[bytes],
    version: int,
    prevhash: bytes,
    ntime: int,
    nbits: int,
    nonce: int,
) -> bytes:
    """sha256d of the header this share builds, in the byte order sha256d returns."""
    out, view = _scratch_hash()
    try:
        if len(prevhash) != HASH_SIZE or set(map(len, merkle_branch)) - {HASH_SIZE}:
            raise ValueError
        extranonce = extranonce1 + extranonce2
        branch = b"".join(merkle_branch)
        status = lib.fleetd_header_hash(
            coinb1, len(coinb1), extranonce, len(extranonce), coinb2, len(coinb2),
            branch, len(merkle_branch), version, prevhash, ntime, nbits, nonce, out,
        )  # fmt: skip
    except (OverflowError, TypeError, ValueError):
        status = None
    if status != 0:  # find the bad argument and say what is wrong with it
        _buffer(extranonce1, "extranonce1")
        _buffer(extranonce2, "extranonce2")
        PreparedJob(coinb1, coinb2, merkle_branch, prevhash, nbits, len(extranonce1) + len(extranonce2))
        for name, value in (("version", version), ("ntime", ntime), ("nonce", nonce)):
            _u32(value, name)
        raise TypeError("arguments must be bytes and ints")  # bytearray/memoryview: convert with bytes()
    return view[:]


_thread_scratch = threading.local()


def _scratch_hash():
    """A per-thread output buffer: C writes with the GIL released, so threads never share one."""
    try:
        return _thread_scratch.hash
    except AttributeError:
        out = ffi.new("uint8_t[32]")
        _thread_scratch.hash = (out, ffi.buffer(out))
        return _thread_scratch.hash


def _buffer(value, name: str, size: int | None = None):
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, (bytearray, memoryview)):
        data = bytes(value)
    else:
        raise TypeError(f"{name} must be bytes, got {type(value).__name__}")
    if size is not None and len(data) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(data)}")
    return data


def _u32(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= _U32:
        raise ValueError(f"{name} must fit in 32 bits, got {value}")
    return value


def _branch(merkle_branch: Sequence[bytes]) -> bytes:
    if isinstance(merkle_branch, (bytes, bytearray, str)) or not isinstance(merkle_branch, Sequence):
        raise TypeError("merkle_branch must be a sequence of 32-byte hashes")
    if len(merkle_branch) > MAX_BRANCH:
        raise ValueError(f"merkle branch deeper than {MAX_BRANCH} levels")
    for level, node in enumerate(merkle_branch):
        _buffer(node, f"merkle_branch[{level}]", HASH_SIZE)
    return b"".join(bytes(node) for node in merkle_branch)


def _field_error(shares) -> Exception:
    """Name the first bad field once a fast path has failed on conversion."""
    for i, share in enumerate(shares):
        extranonce, version, ntime, nonce = share
        try:
            _buffer(extranonce, f"share {i} extranonce")
            for name, value in (("version", version), ("ntime", ntime), ("nonce", nonce)):
                _u32(value, f"share {i} {name}")
        except (TypeError, ValueError) as exc:
            return exc
    return TypeError("shares must hold bytes extranonces and 32-bit ints")


def _select_from_environment() -> None:
    value = os.environ.get(ENVIRONMENT)
    try:
        select(value)
    except ValueError:
        choices = ", ".join(available())
        message = f"{ENVIRONMENT}={value!r} is no implementation this CPU runs; set {choices} or auto, or unset it"
        raise ValueError(message) from None


_select_from_environment()
