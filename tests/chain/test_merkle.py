"""Merkle root, the coinbase branch Stratum sends, and folding it back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetd.chain.hashes import sha256d
from fleetd.chain.merkle import fold_branch, merkle_branch, merkle_root


A, B, C, D, E = (bytes([i]) * 32 for i in range(1, 6))


def h(left: bytes, right: bytes) -> bytes:
    return sha256d(left + right)


@pytest.mark.parametrize(
    ("txids", "root", "branch"),
    [
        ([A], A, ()),
        ([A, B], h(A, B), (B,)),
        ([A, B, C], h(h(A, B), h(C, C)), (B, h(C, C))),  # odd level: last hash paired with itself
        ([A, B, C, D], h(h(A, B), h(C, D)), (B, h(C, D))),
        ([A, B, C, D, E], h(h(h(A, B), h(C, D)), h(h(E, E), h(E, E))), (B, h(C, D), h(h(E, E), h(E, E)))),
    ],
    ids=["1", "2", "3", "4", "5"],
)
def test_small_trees(txids, root, branch):
    assert merkle_root(txids) == root
    assert merkle_branch(txids) == branch
    assert fold_branch(txids[0], branch) == root


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70))
def test_branch_folds_to_root(txids):
    branch = merkle_branch(txids)
    assert len(branch) == (len(txids) - 1).bit_length()
    assert fold_branch(txids[0], branch) == merkle_root(txids)
    # The coinbase's own txid is not part of its branch: a different coinbase gives a different root.
    other = bytes(32) if txids[0] != bytes(32) else b"\x01" * 32
    assert fold_branch(other, branch) == merkle_root([other, *txids[1:]])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: merkle_root([]), ValueError, "at least one txid"),
        (lambda: merkle_branch([]), ValueError, "at least one txid"),
        (lambda: merkle_root([A, bytes(31)]), ValueError, "txid 1 must be 32 bytes, got 31"),
        (lambda: merkle_branch([A, B, bytes(33)]), ValueError, "txid 2 must be 32 bytes, got 33"),
        (lambda: merkle_root([A, A.hex()]), TypeError, "txid 1 must be bytes, got str"),
        (lambda: fold_branch(bytes(31), [A]), ValueError, "leaf must be 32 bytes, got 31"),
        (lambda: fold_branch(A, [B, bytes(31)]), ValueError, "merkle branch hash 1 must be 32 bytes, got 31"),
    ],
)
def test_rejects_bad_hashes(call, error, message):
    with pytest.raises(error, match=message):
        call()
