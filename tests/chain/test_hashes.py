"""SHA-256 known answers (NIST FIPS 180-2 examples) and sha256d."""

from __future__ import annotations

import pytest

from fleetd.chain.hashes import sha256, sha256d

NIST_SHA256 = [
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",  # 448 bits
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    ),
    (
        b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
        b"hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",  # 896 bits
    ),
    (b"a" * 1_000_000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
]

SHA256D = [
    (b"", "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"),
    (b"abc", "4f8b42c22dd3729b519ba6f68d2da7cc5b2d606d05daed5ad5128cc03e6c6358"),
    (b"hello", "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50"),  # Bitcoin wiki
]


@pytest.mark.parametrize(("message", "digest"), NIST_SHA256, ids=["empty", "abc", "448-bit", "896-bit", "million-a"])
def test_sha256_nist_vectors(message, digest):
    assert sha256(message).hex() == digest


@pytest.mark.parametrize(("message", "digest"), SHA256D, ids=["empty", "abc", "hello"])
def test_sha256d_known_answers(message, digest):
    assert sha256d(message).hex() == digest


@pytest.mark.parametrize(("message", "digest"), NIST_SHA256[:4], ids=["empty", "abc", "448-bit", "896-bit"])
def test_sha256d_is_sha256_of_the_nist_digest(message, digest):
    assert sha256d(message) == sha256(bytes.fromhex(digest))
