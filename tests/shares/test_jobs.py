"""The job registry: live, stale and unknown jobs, bounded memory, lazy native preparation."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

import pytest

from fleetd.stratum.job import Job
from fleetd.shares.jobs import JobStore, share_key
from fleetd.stratum.rejects import Reject


def job(job_id: str, *, clean: bool = False) -> Job:
    return Job(
        job_id=job_id,
        prevhash=bytes(32),
        coinb1=b"\x01" * 42,
        coinb2=b"\x02" * 30,
        merkle_branch=(b"\x03" * 32,),
        version=0x20000000,
        nbits=0x1D00FFFF,
        ntime=0x66000000,
        clean_jobs=clean,
    )


class Prepared:
    """Stands in for native.PreparedJob; weak-referenceable to watch it being freed."""

    def __init__(self, job: Job, size: int) -> None:
        self.job, self.size = job, size


class CountingPrepare:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, job: Job, size: int) -> Prepared:
        self.calls.append((job.job_id, size))
        return Prepared(job, size)


def test_lookup_live_stale_unknown():
    registry = JobStore()
    assert registry.add(job("a"), 0.0) == []
    a = registry.get("a")
    assert registry.lookup("a") is a and a.job.job_id == "a"
    assert registry.add(job("b"), 1.0) == []
    assert registry.lookup("a") is a  # a job without clean_jobs leaves earlier ones live
    assert registry.add(job("c", clean=True), 2.0) == ["a", "b"]  # connections forget them too
    assert registry.get("a") is None
    assert registry.lookup("a") is Reject.STALE
    assert registry.lookup("b") is Reject.STALE
    assert registry.lookup("c").job.job_id == "c"
    assert registry.lookup("zz") is Reject.UNKNOWN_JOB
    assert registry.latest.job_id == "c"
    assert len(registry) == 1


def test_bounded_by_count_older_jobs_become_stale():
    registry = JobStore(max_jobs=3)
    retired = [registry.add(job(f"j{i}"), float(i)) for i in range(10)]
    assert retired == [[], [], [], *[[f"j{i}"] for i in range(7)]]
    assert len(registry) == 3
    assert [e.job.job_id for e in registry] == ["j7", "j8", "j9"]
    assert registry.lookup("j6") is Reject.STALE


def test_bounded_by_age_but_the_newest_job_stays():
    registry = JobStore(max_age=60.0)
    registry.add(job("old"), 0.0)
    registry.add(job("mid"), 30.0)
    assert registry.expire(75.0) == ["old"]
    assert registry.lookup("old") is Reject.STALE
    assert registry.lookup("mid") is not Reject.STALE
    registry.expire(10_000.0)  # no new job for hours: the current one must still validate
    assert registry.lookup("mid").job.job_id == "mid"
    assert registry.add(job("new"), 10_001.0) == ["mid"]  # adding also expires
    assert registry.lookup("mid") is Reject.STALE


def test_stale_ids_are_bounded_then_unknown():
    registry = JobStore(max_jobs=1, max_stale_ids=5)
    for i in range(20):
        registry.add(job(f"j{i}"), float(i))
    assert [registry.lookup(f"j{i}") for i in range(14, 19)] == [Reject.STALE] * 5
    assert registry.lookup("j13") is Reject.UNKNOWN_JOB


def test_job_ids_unique_while_live_reusable_once_retired():
    registry = JobStore()
    registry.add(job("a"), 0.0)
    with pytest.raises(ValueError, match="'a'"):
        registry.add(job("a"), 1.0)
    registry.add(job("b", clean=True), 2.0)
    assert registry.lookup("a") is Reject.STALE
    registry.add(job("a"), 3.0)  # a wrapped id counter: new work under an old name
    assert registry.lookup("a").added == 3.0


def test_prepared_lazily_once_per_extranonce_size():
    prepare = CountingPrepare()
    registry = JobStore(prepare=prepare)
    registry.add(job("a"), 0.0)
    entry = registry.get("a")
    assert prepare.calls == []  # adding a job costs no native work
    first = entry.prepared(12)
    assert entry.prepared(12) is first
    entry.prepared(8)
    assert prepare.calls == [("a", 12), ("a", 8)]


def test_memory_goes_with_the_job():
    prepare = CountingPrepare()
    registry = JobStore(prepare=prepare)
    registry.add(job("a"), 0.0)
    entry = registry.get("a")
    entry.seen.add(share_key(b"\x00" * 12, 1, 2, 3))
    prepared = weakref.ref(entry.prepared(12))
    del entry
    registry.add(job("b", clean=True), 1.0)
    gc.collect()
    assert prepared() is None  # the entry, its duplicate set and its native job are gone


def test_share_key_fields():
    extranonce = b"\x01\x02\x03\x04" + b"\x00" * 8
    base = share_key(extranonce, 100, 200, 0x20000000)
    assert share_key(extranonce, 100, 200, 0x20002000) != base  # version bits matter
    assert share_key(extranonce, 100, 201, 0x20000000) != base
    assert share_key(extranonce, 101, 200, 0x20000000) != base
    assert share_key(extranonce[:-1] + b"\x01", 100, 200, 0x20000000) != base
    # A longer extranonce (another extranonce2 size) is another share too.
    assert share_key(extranonce + b"\x00", 100, 200, 0x20000000) != base


def test_imports_without_the_native_core():
    # Sources and the session import the registry; it must not need the compiled module.
    code = (
        "import sys; sys.modules['fleetd._native'] = None; sys.modules['fleetd.native'] = None\n"
        "import fleetd.shares.jobs, fleetd.shares.pool, fleetd.shares.vardiff\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_prepare_is_the_native_core():
    native = pytest.importorskip("fleetd.native")
    store = JobStore()
    store.add(job("a"), 0.0)
    prepared = store.get("a").prepared(12)
    assert isinstance(prepared, native.PreparedJob)
    assert prepared.extranonce_size == 12


@pytest.mark.parametrize("bad", [{"max_jobs": 0}, {"max_age": 0.0}, {"max_stale_ids": -1}])
def test_bad_limits(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        JobStore(**bad)
