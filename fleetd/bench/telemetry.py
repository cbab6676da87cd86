"""``fleetd bench telemetry``: what a poll round of the rig fleet costs (the poll-round part).

N emulated rig APIs (stock Antminer S19 XP / S21 / S21 XP, Whatsminer M60S, Bitaxe, in
turn) run in a child process on their own loopback addresses, so the CPU time measured
here is the poller's alone: pyasic, the conversion to ``RigReading`` and the scheduler.
One process, one event loop (uvloop, as ``fleetd serve`` runs): its CPU time is one
core's work. The rounds:

- cold: every rig identified (``get_miner``) and read, as after a restart;
- warm: ``errors_every`` rounds with cached miners, so each rig's errors are read once, as
  in service: the steady state, and the verdict;
- per model: the same for each model's rigs alone;
- scheduler: the real scheduler polling the N rigs at the design's rate (10,000 rigs per
  30 s, so N rigs per N x 3 ms), polls spread over each interval, for ``errors_every``
  intervals: whether it keeps up, and what the scheduling adds.

The verdict is a ratio from the same run: CPU per poll of the warm mixed rounds, times
10,000 rigs, against one core's 30 seconds.

    python -m fleetd.bench.telemetry serve-rigs --count N --network 127.x.0.0/16

is the child: it prints one JSON line (its rigs) once every rig listens and stops them
all when its stdin closes, so it never outlives the bench.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version

from fleetd import log as logs
from fleetd.rigs.models import CATALOGUE
from fleetd.rigs.poller import PollerConfig, RigPoller
from fleetd.rigs.reading import RigReading
from fleetd.sim import procfs
from fleetd.sim.loadgen import raise_fd_limit

DESIGN_RIGS = 10_000
DESIGN_INTERVAL = 30.0  # seconds: 10,000 rigs must be polled within one, on one core
SOCKETS_PER_POLL = 4  # stock Antminer: the 4028 API plus digest-auth HTTP, overlapping
SOCKETS_PER_RIG = 2  # listening sockets per emulated rig (stock Antminer: 4028 and 80)
FD_HEADROOM = 256
START_TIMEOUT_S = 300.0  # for the child to bring every rig up
MIN_SCHEDULED_INTERVAL = 1.0
# Loopback polls are CPU-bound: past a few dozen in flight, more only queue for the CPU,
# and a poll queued longer than its timeout would count as the rig's failure.
DEFAULT_CONCURRENCY = 64
ERRORS_EVERY = PollerConfig().errors_every


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class RoundTiming:
    label: str
    polls: int  # rigs read successfully
    failures: int
    wall: float  # seconds
    cpu: float  # this process's CPU seconds over the round

    @property
    def cpu_per_poll(self) -> float:
        return self.cpu / max(1, self.polls)

    @property
    def polls_per_cpu_second(self) -> float:
        return self.polls / self.cpu if self.cpu > 0 else float("inf")

    @property
    def core_share(self) -> float:
        """CPU over wall time: how much of one core the round kept busy."""
        return self.cpu / self.wall if self.wall > 0 else 0.0

    def __add__(self, other: RoundTiming) -> RoundTiming:
        return RoundTiming(
            self.label, self.polls + other.polls, self.failures + other.failures,
            self.wall + other.wall, self.cpu + other.cpu,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PollRoundResult:
    rigs: int
    mix: tuple[tuple[str, int], ...]  # model name, rigs of it
    concurrency: int
    loop: str
    rounds: int  # warm rounds measured (errors_every: each rig's errors read once)
    cold: RoundTiming
    warm: RoundTiming  # all warm rounds together
    per_model: tuple[RoundTiming, ...]
    scheduled: RoundTiming | None
    scheduled_interval: float | None
    kept_up: float | None  # polls done / polls due, over the scheduler's settled intervals
    rig_side_cpu: float  # the emulated rigs' process, over every round

    @property
    def round_wall(self) -> float:
        """Wall time of one warm round of all the rigs."""
        return self.warm.wall / self.rounds

    def design_cpu(self, timing: RoundTiming | None = None) -> float:
        """CPU seconds one round of DESIGN_RIGS rigs like these would take."""
        return DESIGN_RIGS * (timing or self.warm).cpu_per_poll

    def rigs_per_interval(self, timing: RoundTiming | None = None) -> float:
        """How many such rigs one core polls in one DESIGN_INTERVAL."""
        return DESIGN_INTERVAL / (timing or self.warm).cpu_per_poll

    @property
    def meets_design(self) -> bool:
        return self.design_cpu() <= DESIGN_INTERVAL


def poll_round(
    n: int = 1000,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    scheduled: bool = True,
    use_uvloop: bool = True,
) -> PollRoundResult:
    """Run the measurement (blocking, in its own event loop); see the module docstring."""
    if n < len(CATALOGUE):
        raise ValueError(f"a poll round needs at least {len(CATALOGUE)} rigs (one per model), got {n}")
    raise_fd_limit(SOCKETS_PER_POLL * concurrency + FD_HEADROOM)
    loop_factory, loop_name = _loop_factory(use_uvloop)
    # the design's poll rate: n rigs per (n / 10,000) of 30 s
    interval = max(MIN_SCHEDULED_INTERVAL, n * DESIGN_INTERVAL / DESIGN_RIGS)
    with _rig_process(n, concurrency) as (pid, rigs), asyncio.Runner(loop_factory=loop_factory) as runner:
        child_cpu = procfs.cpu_seconds(pid)
        cold, warm, per_model, sched, kept_up = runner.run(_measure(rigs, concurrency, interval if scheduled else None))
        rig_side_cpu = procfs.cpu_seconds(pid) - child_cpu
    mix = Counter(model for _, model in rigs)
    return PollRoundResult(
        rigs=n,
        mix=tuple((m.name, mix[m.name]) for m in CATALOGUE),
        concurrency=concurrency,
        loop=loop_name,
        rounds=ERRORS_EVERY,
        cold=cold,
        warm=warm,
        per_model=per_model,
        scheduled=sched,
        scheduled_interval=interval if scheduled else None,
        kept_up=kept_up,
        rig_side_cpu=rig_side_cpu,
    )


async def _measure(
    rigs: list[tuple[str, str]], concurrency: int, interval: float | None
) -> tuple[RoundTiming, RoundTiming, tuple[RoundTiming, ...], RoundTiming | None, float | None]:
    counts: Counter = Counter()
    errors: list[str] = []
    read_at: list[float] = []  # wall clock of every reading

    def on_reading(_reading: RigReading) -> None:
        counts["ok"] += 1
        read_at.append(_reading.time)

    def on_failure(ip: str, error: str) -> None:
        counts["failed"] += 1
        errors.append(f"{ip}: {error}")

    # the poll-round rounds ignore the interval; the scheduler runs at this one
    every = interval or DESIGN_INTERVAL
    config = PollerConfig(interval=every, timeout=min(10.0, 0.9 * every), concurrency=concurrency)
    assert config.errors_every == ERRORS_EVERY
    poller = RigPoller(config, on_reading=on_reading, on_failure=on_failure)
    for ip, _ in rigs:
        poller.add(ip)

    async def timed(label: str, ips: list[str] | None = None, rounds: int = 1) -> RoundTiming:
        before = Counter(counts)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            await poller.poll_round(ips)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return RoundTiming(label, counts["ok"] - before["ok"], counts["failed"] - before["failed"], wall, cpu)

    cold = await timed("cold round (identify + read)")
    if cold.failures:
        raise BenchError(f"{cold.failures} of {len(rigs)} emulated rigs could not be read: {errors[:3]}")
    # each rig read its errors in the cold round: the next errors_every rounds read them once more
    warm = await timed(f"warm rounds (x{ERRORS_EVERY}, cached miners)", rounds=ERRORS_EVERY)
    per_model = []
    for model in CATALOGUE:
        ips = [ip for ip, name in rigs if name == model.name]
        per_model.append(await timed(model.name, ips, rounds=ERRORS_EVERY))
    sched, kept_up = None, None
    if interval is not None:
        before = Counter(counts)
        wall, cpu, started = time.perf_counter(), time.process_time(), time.time()
        async with poller:
            await asyncio.sleep(ERRORS_EVERY * interval)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        label = f"scheduler ({ERRORS_EVERY} x {interval:g} s interval)"
        sched = RoundTiming(label, counts["ok"] - before["ok"], counts["failed"] - before["failed"], wall, cpu)
        # after the first interval every rig is on its phase: each is due once per interval
        settled = [t for t in read_at if started + interval <= t < started + ERRORS_EVERY * interval]
        kept_up = len(settled) / (len(rigs) * (ERRORS_EVERY - 1))
    return cold, warm, tuple(per_model), sched, kept_up


def _loop_factory(use_uvloop: bool):
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop, "uvloop"
    return asyncio.new_event_loop, "asyncio"


# -- the emulated rigs, in their own process ------------------------------------------


@contextlib.contextmanager
def _rig_process(n: int, concurrency: int) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    # a random /16 clear of the demo's 127.1 and the test suites' 127.30 and up
    network = f"127.{random.randint(2, 29)}.0.0/16"
    command = [sys.executable, "-m", "fleetd.bench.telemetry", "serve-rigs", "--count", str(n), "--network", network]
    command += ["--fds", str(SOCKETS_PER_RIG * n + SOCKETS_PER_POLL * concurrency + FD_HEADROOM)]
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            rigs = _read_rigs(proc, log)
            yield proc.pid, rigs
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()  # the child's signal to stop its rigs and exit
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _read_rigs(proc: subprocess.Popen, log) -> list[tuple[str, str]]:
    line = _readline(proc, START_TIMEOUT_S)
    if not line:
        proc.wait(timeout=30)
        log.seek(0)
        tail = "".join(log.readlines()[-15:])
        raise BenchError(f"the emulated rigs' process exited ({proc.returncode}) before they listened:\n{tail}")
    return [(ip, model) for ip, model in json.loads(line)["rigs"]]


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        proc.kill()
        reader.join()
        raise BenchError(f"the emulated rigs did not come up within {timeout:g} s")
    return result[0]


async def serve_rigs(count: int, network: str) -> None:
    """The child: start ``count`` rigs of the catalogue in turn, report them, serve until stdin closes."""
    from fleetd.sim.firmware import EmulatedRig, LoopbackAllocator, RigState

    allocator = LoopbackAllocator(network)
    rigs = []
    try:
        for i in range(count):
            model = CATALOGUE[i % len(CATALOGUE)]
            rigs.append(await EmulatedRig.start_free(RigState(model, name=f"bench-{i:05d}"), allocator))
        print(json.dumps({"rigs": [[r.host, r.state.model.name] for r in rigs]}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        for rig in rigs:
            rig.state.come_online()
            await rig.stop()


# -- the report -----------------------------------------------------------------------


def format_poll_round(result: PollRoundResult) -> str:
    design = f"{DESIGN_RIGS:,} rigs per {DESIGN_INTERVAL:g} s on one core"
    lines = [
        f"fleetd bench telemetry: poll rounds of {result.rigs:,} emulated rig APIs on loopback "
        f"(pyasic {version('pyasic')}, {result.loop}, concurrency {result.concurrency})",
        "  mix: " + ", ".join(f"{count} {name}" for name, count in result.mix),
        "",
        f"  {'round':<38}{'polls':>7}{'wall s':>9}{'CPU s':>8}{'core':>6}{'CPU ms/poll':>13}{'polls/CPU-s':>13}",
    ]
    timings = [result.cold, result.warm, *result.per_model]
    if result.scheduled is not None:
        timings.append(result.scheduled)
    for t in timings:
        label = f"  {t.label}" if t in result.per_model else t.label
        failed = f"  ({t.failures} failed)" if t.failures else ""
        lines.append(
            f"  {label:<38}{t.polls:>7,}{t.wall:>9.2f}{t.cpu:>8.2f}{t.core_share:>6.0%}"
            f"{t.cpu_per_poll * 1e3:>13.2f}{t.polls_per_cpu_second:>13,.0f}{failed}"
        )
    lines += ["", f"  one warm round of all {result.rigs:,} rigs: {result.round_wall:.2f} s wall"]
    if result.scheduled is not None:
        s = result.scheduled
        lines.append(
            f"  scheduler at the design's rate ({result.rigs:,} rigs per {result.scheduled_interval:g} s): "
            f"{result.kept_up:.0%} of the polls due were done, {s.core_share:.0%} of a core, "
            f"{(s.cpu_per_poll / result.warm.cpu_per_poll - 1):+.0%} CPU per poll against the warm rounds"
        )
    lines += [
        f"  emulated rigs' own process: {result.rig_side_cpu:.1f} CPU s over all rounds (not counted above)",
        f"  one core polls {result.rigs_per_interval():,.0f} rigs of this mix per {DESIGN_INTERVAL:g} s; "
        "of one model alone: "
        + ", ".join(f"{t.label} {result.rigs_per_interval(t):,.0f}" for t in result.per_model),
        f"  {design}: needs {result.design_cpu():.1f} CPU s per {DESIGN_INTERVAL:g} s "
        f"= {result.design_cpu() / DESIGN_INTERVAL:.0%} of a core: {'met' if result.meets_design else 'NOT met'}",
        f"  after a restart, identifying every rig once costs {DESIGN_RIGS * result.cold.cpu_per_poll:.0f} CPU s "
        f"for {DESIGN_RIGS:,} rigs (the first round spreads over several intervals)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetd.bench.telemetry")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve-rigs", help="(the bench's child) serve emulated rig APIs until stdin closes")
    serve.add_argument("--count", type=int, required=True)
    serve.add_argument("--network", required=True)
    serve.add_argument("--fds", type=int, default=0)
    run = commands.add_parser("poll-round", help="measure a poll round")
    run.add_argument("--rigs", type=int, default=1000)
    run.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    run.add_argument("--no-scheduler", action="store_true")
    args = parser.parse_args(argv)
    logs.configure("warning", stream=sys.stderr)  # the report alone on stdout
    if args.command == "serve-rigs":
        raise_fd_limit(args.fds)
        loop_factory, _ = _loop_factory(True)
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve_rigs(args.count, args.network))
        return 0
    result = poll_round(args.rigs, concurrency=args.concurrency, scheduled=not args.no_scheduler)
    print(format_poll_round(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["BenchError", "PollRoundResult", "RoundTiming", "format_poll_round", "poll_round", "serve_rigs"]
