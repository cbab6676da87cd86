"""The C core against NIST vectors, real blocks and the pure-Python reference, on every implementation."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetd.chain import byteorder, share as reference
from fleetd.chain.coinbase import scriptsig_span
from fleetd.chain.target import bits_to_target

NIST_SHA256 = [
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    ),
    (
        b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
    ),
    (b"a" * 1_000_000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
]


@pytest.mark.parametrize(("message", "digest"), NIST_SHA256, ids=["empty", "abc", "448bit", "896bit", "million-a"])
def test_sha256_nist_vectors(native_impl, message, digest):
    assert native_impl.sha256(message).hex() == digest


def test_sha256d_known_answer(native_impl):
    # sha256d("hello"), as Bitcoin tooling computes it
    assert native_impl.sha256d(b"hello").hex() == "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50"


@pytest.mark.parametrize("length", [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000])
def test_sha256d_padding_boundaries(native_impl, length):
    data = os.urandom(length)
    assert native_impl.sha256d(data) == hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _scriptsig_size(block) -> int:
    start, end = scriptsig_span(block.transactions[0])
    return end - start


@pytest.mark.parametrize(("en1_size", "en2_size"), [(4, 8), (8, 8), (4, 4), (2, 2), (0, 4), (1, 3)])
def test_real_blocks_reproduce_their_hash(native_impl, real_blocks, en1_size, en2_size):
    # blocks 1-4 carry a 4-byte scriptSig: wider extranonces only fit the others
    fitting = [b for b in real_blocks if en1_size + en2_size <= _scriptsig_size(b)]
    assert fitting, "no real block has room for this extranonce"
    for block in fitting:
        for offset in {None, scriptsig_span(block.transactions[0])[0]}:
            job = reference.share_from_block(block, en1_size, en2_size, offset=offset)
            digest = native_impl.header_hash(**job.as_kwargs())
            assert digest == block.hash
            assert byteorder.hash_to_int(digest) <= bits_to_target(job.nbits)


def test_real_blocks_through_prepared_jobs_and_batches(native_impl, real_blocks):
    for block in real_blocks:
        job = reference.share_from_block(block, 2, 2, offset=scriptsig_span(block.transactions[0])[0])
        prepared = native_impl.PreparedJob(
            job.coinb1, job.coinb2, job.merkle_branch, job.prevhash, job.nbits,
            len(job.extranonce1) + len(job.extranonce2),
        )  # fmt: skip
        extranonce = job.extranonce1 + job.extranonce2
        check = prepared.check(extranonce, job.version, job.ntime, job.nonce, bits_to_target(job.nbits))
        assert check == native_impl.ShareCheck(block.hash, meets_target=True, meets_network=True)
        # the same share next to a wrong nonce: only the real one is a block
        shares = [(extranonce, job.version, job.ntime, job.nonce), (extranonce, job.version, job.ntime, job.nonce ^ 1)]
        target = native_impl.encode_target(bits_to_target(job.nbits))
        batch = prepared.check_batch(shares, [target, target])
        assert batch.hash(0) == block.hash
        assert batch.meets_network(0) and batch.meets_target(0)
        assert not batch.meets_network(1) and not batch.meets_target(1)


jobs = st.fixed_dictionaries(
    {
        "coinb1": st.binary(max_size=300),
        "extranonce1": st.binary(max_size=8),
        "extranonce2": st.binary(max_size=16),
        "coinb2": st.binary(max_size=300),
        "merkle_branch": st.lists(st.binary(min_size=32, max_size=32), max_size=16),
        "version": st.integers(0, 2**32 - 1),
        "prevhash": st.binary(min_size=32, max_size=32),
        "ntime": st.integers(0, 2**32 - 1),
        "nbits": st.sampled_from([0x1D00FFFF, 0x1903A30C, 0x207FFFFF, 0x17034219]),
        "nonce": st.integers(0, 2**32 - 1),
    }
)


# native_impl is function-scoped on purpose: it holds for a whole test, examples included
WITH_NATIVE_IMPL = settings(
    suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture]
)


@settings(WITH_NATIVE_IMPL, max_examples=150)
@given(job=jobs)
def test_native_agrees_with_reference(native_impl, job):
    assert native_impl.header_hash(**job) == reference.header_hash(**job)


@settings(WITH_NATIVE_IMPL, max_examples=60)
@given(
    job=jobs,
    nonces=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=19),  # past two groups of lanes
    target=st.integers(0, 2**256 - 1),
)
def test_batch_agrees_with_single_calls(native_impl, job, nonces, target):
    extranonce = job["extranonce1"] + job["extranonce2"]
    prepared = native_impl.PreparedJob(
        job["coinb1"], job["coinb2"], job["merkle_branch"], job["prevhash"], job["nbits"], len(extranonce)
    )
    shares = [(extranonce, job["version"], job["ntime"], nonce) for nonce in nonces]
    batch = prepared.check_batch(shares, [native_impl.encode_target(target)] * len(shares))
    assert len(batch) == len(shares)
    for i, (en, version, ntime, nonce) in enumerate(shares):
        single = prepared.check(en, version, ntime, nonce, target)
        assert batch.hash(i) == single.hash == reference.header_hash(**{**job, "nonce": nonce})
        assert batch.meets_target(i) == single.meets_target == (byteorder.hash_to_int(single.hash) <= target)
        assert batch.meets_network(i) == single.meets_network


def test_check_result_is_a_plain_named_tuple(native_impl, real_blocks):
    block = real_blocks[0]
    job = reference.share_from_block(block, 2, 2, offset=scriptsig_span(block.transactions[0])[0])
    extranonce = job.extranonce1 + job.extranonce2
    prepared = native_impl.PreparedJob(job.coinb1, job.coinb2, job.merkle_branch, job.prevhash, job.nbits, 4)
    easy, hard = bits_to_target(job.nbits), byteorder.hash_to_int(block.hash) - 1
    digest, meets_target, meets_network = prepared.check(extranonce, job.version, job.ntime, job.nonce, hard)
    assert (type(digest), type(meets_target), type(meets_network)) == (bytes, bool, bool)
    assert (digest, meets_target, meets_network) == (block.hash, False, True)
    check = prepared.check(extranonce, job.version, job.ntime, job.nonce, native_impl.encode_target(easy))
    assert (check.hash, check.meets_target, check.meets_network) == (block.hash, True, True)
    assert not hasattr(prepared, "header_hash")


@pytest.mark.parametrize("count", [1, 2, 3, 7, 8, 9, 16, 17])
def test_batches_of_any_size_match_the_reference(native_impl, count):
    job = {**GOOD, "merkle_branch": [bytes([level]) * 32 for level in range(5)]}
    extranonces = [bytes([i]) * 12 for i in range(count)]
    shares = [(extranonce, 0x20000000 + i, 1_700_000_000 + i, 7 * i) for i, extranonce in enumerate(extranonces)]
    prepared = native_impl.PreparedJob(job["coinb1"], job["coinb2"], job["merkle_branch"], job["prevhash"], job["nbits"], 12)
    batch = prepared.check_batch(shares, [bytes(32)] * count)
    for i, (extranonce, version, ntime, nonce) in enumerate(shares):
        fields = dict(extranonce1=extranonce[:4], extranonce2=extranonce[4:], version=version, ntime=ntime, nonce=nonce)
        assert batch.hash(i) == reference.header_hash(**{**job, **fields})


GOOD = dict(
    coinb1=b"\x01" * 60, extranonce1=b"\x00" * 4, extranonce2=b"\x00" * 8, coinb2=b"\x02" * 80,
    merkle_branch=[b"\x03" * 32] * 3, version=0x20000000, prevhash=b"\x04" * 32,
    ntime=1_700_000_000, nbits=0x1D00FFFF, nonce=7,
)  # fmt: skip

BAD_ARGUMENTS = [
    ("prevhash", b"\x00" * 31, ValueError, "prevhash must be 32 bytes"),
    ("prevhash", "00" * 32, TypeError, "prevhash must be bytes"),
    ("merkle_branch", [b"\x00" * 31], ValueError, r"merkle_branch\[0\] must be 32 bytes"),
    ("merkle_branch", [b"\x00" * 32, b"\x00" * 33], ValueError, r"merkle_branch\[1\] must be 32 bytes"),
    ("merkle_branch", b"\x00" * 32, TypeError, "sequence of 32-byte hashes"),
    ("merkle_branch", [b"\x00" * 32] * 33, ValueError, "deeper than 32"),
    ("merkle_branch", [1234], TypeError, "must be bytes"),
    ("coinb1", None, TypeError, "coinb1 must be bytes"),
    ("coinb2", "ff", TypeError, "coinb2 must be bytes"),
    ("extranonce1", 5, TypeError, "extranonce1 must be bytes"),
    ("extranonce2", b"\x00" * 70, ValueError, "extranonce size"),
    ("version", -1, ValueError, "version must fit in 32 bits"),
    ("version", 2**32, ValueError, "version must fit in 32 bits"),
    ("ntime", 1.5, TypeError, "ntime must be an int"),
    ("nonce", 2**64, ValueError, "nonce must fit in 32 bits"),
    ("nbits", -5, ValueError, "nbits must fit in 32 bits"),
    ("nbits", "1d00ffff", TypeError, "nbits must be an int"),
    ("coinb1", b"\x00" * 1_000_001, ValueError, "coinbase longer"),
]


@pytest.mark.parametrize(("field", "value", "error", "message"), BAD_ARGUMENTS)
def test_bad_arguments_raise_clean_errors(native_impl, field, value, error, message):
    with pytest.raises(error, match=message):
        native_impl.header_hash(**{**GOOD, field: value})


def test_prepared_job_rejects_bad_shares(native_impl):
    prepared = native_impl.PreparedJob(b"a" * 70, b"b" * 40, [b"c" * 32], b"d" * 32, 0x1D00FFFF, 12)
    with pytest.raises(ValueError, match="extranonce must be 12 bytes, got 11"):
        prepared.check(b"e" * 11, 1, 2, 3, 2**200)
    with pytest.raises(ValueError, match="extranonce must be 12 bytes, got 13"):
        prepared.check(b"e" * 13, 1, 2, 3, bytes(32))
    with pytest.raises(ValueError, match="nonce must fit in 32 bits"):
        prepared.check(b"e" * 12, 1, 2, -3, 2**200)
    with pytest.raises(ValueError, match="version must fit in 32 bits"):
        prepared.check(b"e" * 12, 2**32, 2, 3, bytes(32))
    with pytest.raises(TypeError, match="ntime must be an int"):
        prepared.check(b"e" * 12, 1, 2.0, 3, bytes(32))
    with pytest.raises(TypeError, match="extranonce must be bytes"):
        prepared.check("e" * 12, 1, 2, 3, bytes(32))
    with pytest.raises(TypeError, match="target must be an int"):
        prepared.check(b"e" * 12, 1, 2, 3, bytes(31))
    with pytest.raises(TypeError, match="target must be an int"):
        prepared.check(b"e" * 12, 1, 2, 3, bytearray(32))
    with pytest.raises(TypeError, match="extranonce must be bytes"):
        prepared.check(None, 1, 2, 3, 2**200)
    with pytest.raises(ValueError, match="target must be between"):
        prepared.check(b"e" * 12, 1, 2, 3, 2**256)
    with pytest.raises(ValueError, match="every extranonce must be 12 bytes"):
        prepared.check_batch([(b"e" * 12, 1, 2, 3), (b"e" * 13, 1, 2, 3)], [bytes(32)] * 2)
    with pytest.raises(ValueError, match="2 shares but 1 targets"):
        prepared.check_batch([(b"e" * 12, 1, 2, 3)] * 2, [bytes(32)])
    with pytest.raises(ValueError, match="share 1 version must fit"):
        prepared.check_batch([(b"e" * 12, 1, 2, 3), (b"e" * 12, 2**32, 2, 3)], [bytes(32)] * 2)
    with pytest.raises(TypeError, match=r"\(extranonce, version, ntime, nonce\)"):
        prepared.check_batch([(b"e" * 12, 1, 2)], [bytes(32)])
    assert len(prepared.check_batch([], [])) == 0


def test_environment_forces_portable():
    code = "from fleetd import native; print(native.IMPL)"
    env = {**os.environ, "FLEETD_NATIVE": "portable"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "portable"


def test_unknown_implementation_is_a_clear_error():
    code = "import fleetd.native"
    env = {**os.environ, "FLEETD_NATIVE": "avx9000"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "ValueError: FLEETD_NATIVE='avx9000' is no implementation this CPU runs; set portable" in out.stderr
