"""The pure-Python reference of share validation, used to cross-check the C core.

Plain hashlib on purpose: it is the baseline the native benchmark compares against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from .byteorder import pack_header
from .coinbase import BIP34_VERSION, bip34_height, encode_height, scriptsig_span, split_coinbase
from .hashes import sha256d
from .merkle import fold_branch, merkle_branch
from .serialize import Block


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
    """sha256d of the header a share describes, in the order sha256d returns it.

    prevhash and branch hashes in internal byte order; integers as numbers.
    """
    coinbase = b"".join((coinb1, extranonce1, extranonce2, coinb2))
    return sha256d(share_header(coinbase, merkle_branch, version, prevhash, ntime, nbits, nonce))


def share_header(
    coinbase: bytes, merkle_branch: Sequence[bytes], version: int, prevhash: bytes, ntime: int, nbits: int, nonce: int
) -> bytes:
    """The 80-byte header over ``coinbase`` (the bytes a miner hashes: coinb1 ‖ extranonce1 ‖
    extranonce2 ‖ coinb2, no witness), its branch folded up to the merkle root."""
    root = fold_branch(sha256d(coinbase), merkle_branch)
    return pack_header(version, prevhash, root, ntime, nbits, nonce)


@dataclass(frozen=True, slots=True)
class BlockShare:
    """A real block rebuilt as a Stratum job plus the share that solves it."""

    coinb1: bytes
    extranonce1: bytes
    extranonce2: bytes
    coinb2: bytes
    merkle_branch: tuple[bytes, ...]
    version: int
    prevhash: bytes
    ntime: int
    nbits: int
    nonce: int
    block_hash: bytes  # internal byte order; what header_hash must return

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of header_hash (every field but block_hash)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "block_hash"}


def share_from_block(
    block: Block, extranonce1_size: int = 4, extranonce2_size: int = 8, offset: int | None = None
) -> BlockShare:
    """Split the block's coinbase at offset (default: after the BIP34 height, else the scriptSig start)."""
    coinbase = block.transactions[0]
    if offset is None:
        offset, _ = scriptsig_span(coinbase)
        height = bip34_height(coinbase.inputs[0].script_sig) if block.version >= BIP34_VERSION else None
        if height is not None:
            offset += len(encode_height(height))
    split = split_coinbase(coinbase.serialize(with_witness=False), offset, extranonce1_size, extranonce2_size)
    return BlockShare(
        coinb1=split.coinb1,
        extranonce1=split.extranonce1,
        extranonce2=split.extranonce2,
        coinb2=split.coinb2,
        merkle_branch=merkle_branch(block.txids),
        version=block.version,
        prevhash=block.prevhash,
        ntime=block.ntime,
        nbits=block.nbits,
        nonce=block.nonce,
        block_hash=block.hash,
    )
