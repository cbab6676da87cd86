"""The small pure pieces: authorization policies, the extranonce allocator, BIP310 helpers, config checks."""

from __future__ import annotations

import dataclasses

import pytest

from fleetd.stratum.auth import AllowListAuthorization, OpenAuthorization, PasswordAuthorization, account_of
from fleetd.stratum.configure import negotiate_version_mask, parse_mask
from fleetd.stratum.extranonce import ExtranonceAllocator
from fleetd.stratum.session import Session, SessionConfig


def test_account_of():
    assert account_of("bc1qxyz.rig7") == "bc1qxyz"
    assert account_of("bc1qxyz") == "bc1qxyz"
    assert account_of("acct.site.rack3") == "acct"
    assert account_of(".rig") == ""


def test_policies():
    assert OpenAuthorization()("a.b", "") and not OpenAuthorization()(".b", "x")
    allow = AllowListAuthorization(["alice", "bob"])
    assert allow("alice.1", "") and allow("bob", "whatever") and not allow("carol.1", "")
    pw = PasswordAuthorization({"alice": "pässword"})
    assert pw("alice.x", "pässword") and not pw("alice.x", "password") and not pw("bob.x", "pässword")


def test_policies_are_frozen_values():
    allow = AllowListAuthorization(["a"])
    assert allow == AllowListAuthorization({"a"}) and hash(allow) == hash(AllowListAuthorization(("a",)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        allow.accounts = frozenset({"b"})
    source = {"a": "1"}
    pw = PasswordAuthorization(source)
    source["a"] = "2"  # the policy took a copy
    assert pw("a", "1")
    with pytest.raises(TypeError):
        pw.passwords["b"] = "x"
    assert "1" not in repr(pw)  # no secrets in logs


def test_allocator_unique_and_sized():
    alloc = ExtranonceAllocator()
    values = [alloc.allocate() for _ in range(1000)]
    assert len(set(values)) == 1000 and all(len(v) == 4 for v in values)
    assert len(alloc) == 1000 and values[0] in alloc


def test_allocator_reuses_released_values_only_after_wrapping():
    alloc = ExtranonceAllocator(size=1)
    held = [alloc.allocate() for _ in range(256)]
    assert sorted(held) == [bytes([i]) for i in range(256)]
    with pytest.raises(RuntimeError):
        alloc.allocate()
    alloc.release(bytes([7]))
    alloc.release(bytes([7]))  # twice is harmless
    assert alloc.allocate() == bytes([7])
    assert len(alloc) == 256


def test_allocator_skips_values_in_use_after_wrap():
    alloc = ExtranonceAllocator(size=1)
    first = [alloc.allocate() for _ in range(256)]
    for v in first[:10]:
        alloc.release(v)
    alloc.release(first[200])
    got = [alloc.allocate() for _ in range(11)]
    assert got == first[:10] + [first[200]]


def test_allocator_prefix_and_independence():
    a = ExtranonceAllocator(size=4, prefix=b"\x01")
    b = ExtranonceAllocator(size=4, prefix=b"\x02")
    assert a.allocate() == b"\x01\x00\x00\x00" and b.allocate() == b"\x02\x00\x00\x00"
    assert a.allocate() == b"\x01\x00\x00\x01"  # no shared state between allocators
    with pytest.raises(ValueError):
        ExtranonceAllocator(size=2, prefix=b"ab")


def test_negotiate_version_mask():
    assert negotiate_version_mask(0x1FFFE000, 0xFFFFFFFF, 16) == 0x1FFFE000
    assert negotiate_version_mask(0x1FFFE000, 0xFFFFFFFF, 17) is None
    assert negotiate_version_mask(0x1FFFE000, 0x1FFFE000, 0) == 0x1FFFE000
    assert negotiate_version_mask(0x1FFFE000, 0x80000000, 0) is None


@pytest.mark.parametrize(("text", "value"), [("1fffe000", 0x1FFFE000), ("FFFFFFFF", 0xFFFFFFFF), ("e000", 0xE000)])
def test_parse_mask(text, value):
    assert parse_mask(text) == value


@pytest.mark.parametrize("bad", ["", "123456789", "0x1fffe0", "1fff e000", "-1", 0x1FFFE000, None])
def test_parse_mask_rejects(bad):
    with pytest.raises(ValueError):
        parse_mask(bad)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("extranonce2_size", 1),
        ("extranonce2_size", 17),
        ("version_mask", 1 << 32),
        ("min_difficulty", 0),
        ("max_difficulty", 1e-12),
        ("max_line_bytes", 0),
        ("max_bad_requests", 0),
        ("authorizer", "open"),
    ],
)
def test_session_config_names_the_bad_key(key, value):
    with pytest.raises(ValueError, match=f"SessionConfig.{key} = "):
        SessionConfig(**{key: value})


def test_session_needs_an_extranonce1():
    with pytest.raises(ValueError):
        Session(SessionConfig(), b"")
