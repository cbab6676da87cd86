"""The share validator: what the session could not check, in the order that is cheapest.

For a submit that passed the session's checks it decides, in order:

1. job unknown (21 unknown_job) or stale (21 stale) — from the registry;
2. ntime from the job's ntime up to ``now + 7200`` s (20 ntime_out_of_range);
3. duplicate of an accepted share of the same job (22 duplicate);
4. proof of work in the native core against ``submit.difficulty``, or against
   ``submit.fallback_difficulty`` when the session set one (23 low_difficulty below both);
5. whether it also meets the network target: a block.

An accepted share is credited (``credited_difficulty``) at its job's difficulty when it
meets that, else at the fallback it met: cgminer and bmminer apply a lowered difficulty
to work from the job they already hold.

Which shares are remembered for duplicate detection: only accepted ones. A share
rejected for job, ntime or difficulty leaves no trace. For stale/unknown/ntime that is
the only sound choice (the key may not even belong to a live job). For low difficulty
it is a choice: resubmitting the same key yields the same hash at the same
difficulty, so the miner gets 23 again, which is the truthful reason; and recording
would let a client grow the set without limit, since missing the target costs it
nothing, while every accepted share costs real work.

A share meeting the network target is accepted and marked ``is_block`` even if it
misses the share target, which can only happen when the network target is easier
than the share target (the demo chain): a block is never refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleetd.chain.target import DIFF1_TARGET, difficulty_to_target
from fleetd.stratum.events import SubmitReceived
from fleetd.stratum.rejects import Reject

from fleetd.stratum.job import Job
from .registry import JobEntry, JobRegistry, share_key

NTIME_MAX_FUTURE = 7200  # seconds; Bitcoin's limit on block timestamps ahead of network time
_TARGET_CACHE_LIMIT = 4096  # distinct difficulties; vardiff produces few per connection


@dataclass(frozen=True, slots=True)
class ShareResult:
    """The verdict on one submit. ``reject`` is None exactly when ``accepted``."""

    accepted: bool
    reject: Reject | None
    hash: bytes | None  # header hash, internal byte order; None when no hash was computed
    share_difficulty: float  # the hash's own difficulty (0.0 without a hash)
    is_block: bool
    job: Job | None  # None for an unknown job
    credited_difficulty: float = 0.0  # the difficulty an accepted share counts at; 0.0 when rejected


class ShareValidator:
    """Validates submits against a ``JobRegistry``. Not thread-safe: one per event loop."""

    __slots__ = ("registry", "max_future", "_targets")

    def __init__(self, registry: JobRegistry, *, max_future: int = NTIME_MAX_FUTURE) -> None:
        self.registry = registry
        self.max_future = max_future
        self._targets: dict[float, bytes] = {}

    def validate(self, submit: SubmitReceived, now: float) -> ShareResult:
        """Judge one submit; ``now`` is the injected wall-clock time (Unix seconds) for the ntime window."""
        found = self._precheck(submit, now)
        if isinstance(found, ShareResult):
            return found
        entry, key = found
        extranonce = submit.extranonce1 + submit.extranonce2
        fallback = submit.fallback_difficulty
        check = entry.prepared(len(extranonce)).check(
            extranonce,
            submit.version,
            submit.ntime,
            submit.nonce,
            self._target(submit.difficulty if fallback is None else fallback),
        )
        return self._decide(entry, key, check.hash, check.meets_target, check.meets_network, submit)

    def validate_batch(self, submits: Sequence[SubmitReceived], now: float) -> list[ShareResult]:
        """Same results as ``validate`` on each submit in order, hashing each job's shares in one native call."""
        results: list[ShareResult | None] = [None] * len(submits)
        pending: list[tuple[int, JobEntry, bytes]] = []
        groups: dict[tuple[str, int], tuple[JobEntry, list[int], list[tuple], list[bytes]]] = {}
        for i, submit in enumerate(submits):
            found = self._precheck(submit, now)
            if isinstance(found, ShareResult):
                results[i] = found
                continue
            entry, key = found
            extranonce = submit.extranonce1 + submit.extranonce2
            group = groups.get((entry.job.job_id, len(extranonce)))
            if group is None:
                group = groups[(entry.job.job_id, len(extranonce))] = (entry, [], [], [])
            group[1].append(i)
            group[2].append((extranonce, submit.version, submit.ntime, submit.nonce))
            fallback = submit.fallback_difficulty
            group[3].append(self._target(submit.difficulty if fallback is None else fallback))
            pending.append((i, entry, key))
        checks: dict[int, tuple[bytes, bool, bool]] = {}
        for entry, indices, shares, targets in groups.values():
            batch = entry.prepared(len(shares[0][0])).check_batch(shares, targets)
            for k, i in enumerate(indices):
                checks[i] = (batch.hash(k), batch.meets_target(k), batch.meets_network(k))
        # Decide in submit order, so a key repeated within the batch is a duplicate of its
        # first accepted occurrence exactly as with one-by-one validation.
        for i, entry, key in pending:
            results[i] = self._decide(entry, key, *checks[i], submits[i])
        return results  # type: ignore[return-value]

    # -- steps ------------------------------------------------------------------

    def _precheck(self, submit: SubmitReceived, now: float) -> tuple[JobEntry, bytes] | ShareResult:
        entry = self.registry.lookup(submit.job_id)
        if not isinstance(entry, JobEntry):
            return ShareResult(False, entry, None, 0.0, False, None)
        job = entry.job
        if not job.ntime <= submit.ntime <= now + self.max_future:
            return ShareResult(False, Reject.NTIME_OUT_OF_RANGE, None, 0.0, False, job)
        key = share_key(submit.extranonce1, submit.extranonce2, submit.ntime, submit.nonce, submit.version)
        if key in entry.seen:
            return ShareResult(False, Reject.DUPLICATE, None, 0.0, False, job)
        return entry, key

    def _decide(
        self,
        entry: JobEntry,
        key: bytes,
        digest: bytes,
        meets_target: bool,
        meets_network: bool,
        submit: SubmitReceived,
    ) -> ShareResult:
        job = entry.job
        seen = entry.seen
        if key in seen:  # only in a batch: an earlier copy in it was just accepted
            return ShareResult(False, Reject.DUPLICATE, None, 0.0, False, job)
        value = int.from_bytes(digest, "little")
        share_difficulty = DIFF1_TARGET / value if value else float("inf")
        if not (meets_target or meets_network):
            return ShareResult(False, Reject.LOW_DIFFICULTY, digest, share_difficulty, False, job)
        seen.add(key)
        credited = submit.difficulty
        fallback = submit.fallback_difficulty
        # Checked against the fallback's easier target: credit the job's difficulty only if met.
        if fallback is not None and meets_target and value > int.from_bytes(self._target(credited), "little"):
            credited = fallback
        return ShareResult(True, None, digest, share_difficulty, meets_network, job, credited)

    def _target(self, difficulty: float) -> bytes:
        # difficulty_to_target is exact (Fraction) and slow; difficulties repeat, so cache the encoding.
        try:
            return self._targets[difficulty]
        except KeyError:
            if len(self._targets) >= _TARGET_CACHE_LIMIT:
                self._targets.clear()
            encoded = self._targets[difficulty] = difficulty_to_target(difficulty).to_bytes(32, "little")
            return encoded

