"""``fleetd bench validate``: the cost of checking one share, Python reference vs the C core."""

from __future__ import annotations

import random
from dataclasses import dataclass

from fleetd import native
from fleetd.bench import interleaved_medians, median_per_item
from fleetd.chain import share as reference
from fleetd.chain.coinbase import encode_height
from fleetd.chain.target import difficulty_to_target

BATCH_TARGET_RATIO = 10.0  # goals for every implementation, against the hashlib reference
SINGLE_TARGET_RATIO = 5.0


@dataclass(frozen=True, slots=True)
class BenchJob:
    coinb1: bytes
    coinb2: bytes
    merkle_branch: tuple[bytes, ...]
    prevhash: bytes
    version: int
    ntime: int
    nbits: int
    extranonce1: bytes


def realistic_job(seed: int = 1, merkle_levels: int = 12) -> BenchJob:
    """A ~200-byte coinbase (height, tag, extranonce slot, two payouts, witness commitment)."""
    rng = random.Random(seed)
    script_head = encode_height(925_000) + b"/fleetd/"
    coinb1 = (
        bytes.fromhex("01000000" "01" + "00" * 32 + "ffffffff")
        + bytes([len(script_head) + 12])
        + script_head
    )
    coinb2 = (
        bytes.fromhex("ffffffff" "03")
        + (312_500_000).to_bytes(8, "little") + bytes([22]) + bytes.fromhex("0014") + rng.randbytes(20)
        + (1_000_000).to_bytes(8, "little") + bytes([34]) + bytes.fromhex("5120") + rng.randbytes(32)
        + bytes(8) + bytes([38]) + bytes.fromhex("6a24aa21a9ed") + rng.randbytes(32)
        + bytes(4)
    )  # fmt: skip
    return BenchJob(
        coinb1=coinb1,
        coinb2=coinb2,
        merkle_branch=tuple(rng.randbytes(32) for _ in range(merkle_levels)),
        prevhash=rng.randbytes(32),
        version=0x20000000,
        ntime=1_764_000_000,
        nbits=0x17034219,
        extranonce1=rng.randbytes(4),
    )


def run(repeats: int = 15, batch_size: int = 64, loops: int = 200) -> dict[str, float]:
    """Median seconds per share for each path under the active native implementation."""
    job = realistic_job()
    prepared = native.PreparedJob(job.coinb1, job.coinb2, job.merkle_branch, job.prevhash, job.nbits, 12)
    target = native.encode_target(difficulty_to_target(1024))
    rng = random.Random(2)
    shares = [(job.extranonce1 + rng.randbytes(8), job.version, job.ntime, rng.getrandbits(32)) for _ in range(batch_size)]
    extranonce, version, ntime, nonce = shares[0]
    kwargs = dict(
        coinb1=job.coinb1, extranonce1=extranonce[:4], extranonce2=extranonce[4:], coinb2=job.coinb2,
        merkle_branch=job.merkle_branch, version=version, prevhash=job.prevhash, ntime=ntime,
        nbits=job.nbits, nonce=nonce,
    )  # fmt: skip
    # every path must compute the same hash before any of them is timed
    expected = reference.header_hash(**kwargs)
    assert native.header_hash(**kwargs) == expected
    assert prepared.check(extranonce, version, ntime, nonce, target).hash == expected
    assert prepared.check_batch(shares, [target] * batch_size).hash(0) == expected

    targets = [target] * batch_size
    positional = tuple(kwargs.values())  # header_hash's parameter order
    samplers = {
        "reference": median_per_item(reference.header_hash, 1, loops, positional),
        "single": median_per_item(prepared.check, 1, loops, (extranonce, version, ntime, nonce, target)),
        "oneshot": median_per_item(native.header_hash, 1, loops, positional),
        "batch": median_per_item(prepared.check_batch, batch_size, max(1, loops // 8), (shares, targets)),
    }
    return interleaved_medians(samplers, repeats)


def report(repeats: int = 15, batch_size: int = 64, loops: int = 200, impls: tuple[str, ...] = ()) -> str:
    """Every path under each of ``impls`` (default: every implementation this CPU runs)."""
    previous = native.IMPL
    lines = [
        f"fleetd bench validate: ~200-byte coinbase, 12 merkle levels, median of {repeats} interleaved runs",
        f"native implementations available: {', '.join(native.available())}",
    ]
    try:
        for impl in impls or native.available():
            native.select(impl)
            medians = run(repeats, batch_size, loops)
            ref = medians["reference"]
            lines += [
                "",
                f"[{native.IMPL}]",
                f"  {'path':<44}{'per share':>12}{'vs reference':>15}",
            ]
            rows = [
                ("Python reference (hashlib)", "reference"),
                ("native single call (prepared job, check)", "single"),
                ("native one-shot header_hash (job rebuilt)", "oneshot"),
                (f"native batch ({batch_size} shares per call)", "batch"),
            ]
            for label, key in rows:
                lines.append(f"  {label:<44}{medians[key] * 1e6:>9.3f} µs{ref / medians[key]:>14.1f}×")
            lines.append(f"  batch throughput: {1 / medians['batch']:,.0f} shares/s per core")
            if impl != previous:
                # hashlib runs on the CPU's SHA instructions where it has them: the targets
                # are for the implementation fleetd runs, the one that uses them too.
                lines.append(f"  (targets are judged for {previous}, the implementation in use)")
                continue
            verdicts = (
                ("batch", BATCH_TARGET_RATIO, ref / medians["batch"]),
                ("single", SINGLE_TARGET_RATIO, ref / medians["single"]),
            )
            for name, goal, ratio in verdicts:
                lines.append(f"  target {name} ≥ {goal:.0f}×: {'met' if ratio >= goal else 'NOT met'} ({ratio:.1f}×)")
    finally:
        native.select(previous)
    return "\n".join(lines)
