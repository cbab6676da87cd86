"""The one job store: live jobs, what became stale, and the shares seen per job.

Every source publishes into it and every connection judges shares by it. A job lives
from ``add`` until a clean job supersedes it (new block), until newer jobs push it out
(``max_jobs``), or until it grows older than ``max_age``: that is the one retention rule.
Then its entry, with its duplicate set, its prepared native job and the source's block
data, is dropped at once; only its id is remembered (a bounded tombstone list) so late
shares for it are reported as stale rather than unknown. ``add`` and ``expire`` return
the ids they retired, so connections forget them too.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from fleetd.stratum.rejects import Reject

from fleetd.stratum.job import Job

if TYPE_CHECKING:  # fleetd.native needs the compiled core; import it only when a job is prepared
    from fleetd.native import PreparedJob

Prepare = Callable[[Job, int], "PreparedJob"]

_pack_header_fields = struct.Struct("<III").pack


def share_key(extranonce: bytes, ntime: int, nonce: int, version: int) -> bytes:
    """The duplicate key of a share within its job: the same key is the same header.

    ``extranonce`` is extranonce1 ‖ extranonce2; both sizes are fixed for a job on a
    connection, and extranonce1 is unique per connection, so no two splits collide.
    Version bits are part of it (leaving them out rejects version-rolling miners' distinct
    shares as duplicates). One bytes object: about half the memory of a tuple.
    """
    return extranonce + _pack_header_fields(ntime, nonce, version)


def native_prepare(job: Job, extranonce_size: int) -> PreparedJob:
    """Prepare ``job`` in the native core (imported here, so this module loads without it)."""
    from fleetd.native import PreparedJob

    return PreparedJob(job.coinb1, job.coinb2, job.merkle_branch, job.prevhash, job.nbits, extranonce_size)


class JobEntry:
    """A live job with its duplicate set and, once a share needs it, its prepared native job."""

    __slots__ = ("job", "added", "seen", "_prepare", "_prepared")

    def __init__(self, job: Job, added: float, prepare: Prepare) -> None:
        self.job = job
        self.added = added
        self.seen: set[bytes] = set()  # share_key of every accepted share
        self._prepare = prepare
        self._prepared: dict[int, Any] = {}

    def prepared(self, extranonce_size: int) -> PreparedJob:
        """The native job for this extranonce1 + extranonce2 size, built once and reused."""
        try:
            return self._prepared[extranonce_size]
        except KeyError:
            prepared = self._prepared[extranonce_size] = self._prepare(self.job, extranonce_size)
            return prepared

    def __repr__(self) -> str:
        return f"JobEntry({self.job.job_id!r}, added={self.added}, seen={len(self.seen)})"


class JobStore:
    """Jobs by id. Mutated only from the event loop thread that owns it."""

    __slots__ = ("max_jobs", "max_age", "max_stale_ids", "_prepare", "_live", "_stale")

    def __init__(
        self,
        *,
        max_jobs: int = 64,
        max_age: float = 900.0,
        max_stale_ids: int = 4096,
        prepare: Prepare = native_prepare,
    ) -> None:
        if max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, got {max_jobs!r}")
        if not max_age > 0:
            raise ValueError(f"max_age must be positive seconds, got {max_age!r}")
        if max_stale_ids < 0:
            raise ValueError(f"max_stale_ids must not be negative, got {max_stale_ids!r}")
        self.max_jobs = max_jobs
        self.max_age = max_age
        self.max_stale_ids = max_stale_ids
        self._prepare = prepare
        self._live: OrderedDict[str, JobEntry] = OrderedDict()  # oldest first
        self._stale: OrderedDict[str, None] = OrderedDict()  # retired ids, oldest first

    def add(self, job: Job, now: float) -> list[str]:
        """Register a new job; a clean job makes every earlier one stale. Returns the retired ids."""
        if job.job_id in self._live:
            raise ValueError(f"job id {job.job_id!r} is already live; job ids must be unique")
        self._stale.pop(job.job_id, None)  # an id reused long after (a wrapped counter) is new work
        retired: list[str] = []
        live = self._live
        if job.clean_jobs:
            while live:
                retired.append(self._retire(live.popitem(last=False)[0]))
        live[job.job_id] = JobEntry(job, now, self._prepare)
        while len(live) > self.max_jobs:
            retired.append(self._retire(live.popitem(last=False)[0]))
        retired += self.expire(now)
        return retired

    def expire(self, now: float) -> list[str]:
        """Retire jobs older than ``max_age``; the newest job always stays. Returns the retired ids."""
        live = self._live
        horizon = now - self.max_age
        retired = []
        while len(live) > 1:
            oldest = next(iter(live.values()))
            if oldest.added >= horizon:
                break
            retired.append(self._retire(live.popitem(last=False)[0]))
        return retired

    def get(self, job_id: str) -> JobEntry | None:
        """The live entry, None when there is none (``lookup`` says why)."""
        return self._live.get(job_id)

    def lookup(self, job_id: str) -> JobEntry | Reject:
        """The live entry, or ``Reject.STALE`` for a job of ours that is gone, else ``Reject.UNKNOWN_JOB``."""
        entry = self._live.get(job_id)
        if entry is not None:
            return entry
        return Reject.STALE if job_id in self._stale else Reject.UNKNOWN_JOB

    @property
    def latest(self) -> Job | None:
        if not self._live:
            return None
        return next(reversed(self._live.values())).job

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[JobEntry]:
        return iter(list(self._live.values()))

    def _retire(self, job_id: str) -> str:
        # The entry (duplicate set, native job) is freed with the last reference; only the id stays.
        stale = self._stale
        stale[job_id] = None
        while len(stale) > self.max_stale_ids:
            stale.popitem(last=False)
        return job_id
