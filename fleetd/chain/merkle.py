"""Bitcoin merkle trees over txids (internal byte order), and the coinbase branch Stratum sends.

On a level with an odd number of hashes the last one is paired with itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .byteorder import HASH_SIZE
from .hashes import sha256d


def merkle_root(txids: Iterable[bytes]) -> bytes:
    """The merkle root of the txids, in block order."""
    level = _leaves(txids)
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def merkle_branch(txids: Iterable[bytes]) -> tuple[bytes, ...]:
    """The sibling hashes from the first txid (the coinbase) up to the root, as mining.notify lists them.

    Only the coinbase's own txid is not needed: a pool changes it with every extranonce.
    """
    level = _leaves(txids)
    branch = []
    while len(level) > 1:
        branch.append(level[1])
        level = _next_level(level)
    return tuple(branch)


def fold_branch(leaf: bytes, branch: Sequence[bytes]) -> bytes:
    """The root reached from the leftmost leaf through its branch."""
    _check_hash(leaf, "leaf")
    node = leaf
    for depth, sibling in enumerate(branch):
        if len(sibling) != HASH_SIZE:  # checked inline: this loop is the share-validation hot path
            raise ValueError(f"merkle branch hash {depth} must be {HASH_SIZE} bytes, got {len(sibling)}")
        node = sha256d(node + sibling)
    return node


def _leaves(txids: Iterable[bytes]) -> list[bytes]:
    level = list(txids)
    if not level:
        raise ValueError("a merkle tree needs at least one txid")
    for i, txid in enumerate(level):
        _check_hash(txid, f"txid {i}")
    return level


def _next_level(level: list[bytes]) -> list[bytes]:
    if len(level) % 2:
        level = level + level[-1:]
    return [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]


def _check_hash(value: bytes, name: str) -> None:
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{name} must be bytes, got {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise ValueError(f"{name} must be {HASH_SIZE} bytes, got {len(value)}")
