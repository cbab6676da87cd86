"""The load generator against the loopback pool, which verifies every share with the C core.

Windows end after a count of answered submits (``count``), with ``seconds`` only as a hang
guard, so what a test asserts does not depend on how much a loaded machine gets done in a
fixed time.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import urllib.request

import orjson
import pytest

from fleetd.bench import stratum as bench_stratum
from fleetd.chain.target import difficulty_to_target
from fleetd.sim import loadgen
from fleetd.sim.loadgen import LoadConfig, run
from fleetd.sim.loopback import NotLoopbackError
from sim_support import LoopbackPool, make_job, wait_until

TRIVIAL = 1e-12  # target 2^256 - 1: every nonce is a share
BOUND_S = 30.0  # a window's hang guard; count-ended windows take a fraction of a second


def assert_no_tasks_left() -> None:
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_every_submit_is_a_unique_valid_share_for_the_latest_job():
    async with LoopbackPool(difficulty=TRIVIAL) as pool:
        result = await run(LoadConfig(pool.port, connections=20, seconds=BOUND_S, count=200, warmup=0.1))
    assert result.mode == "throughput" and result.connections_ready == 20 and not result.connect_errors
    assert result.answered >= 200 and result.accepted == result.answered and result.rejected == 0
    assert result.difficulties == [TRIVIAL] and result.hashes == 0  # every nonce is a share: nothing ground
    # the pool accepted every share it saw (warm-up and drain included), each verified by the C core
    assert not pool.rejected and len(pool.accepted) >= result.answered
    keys = {(s.extranonce1, s.extranonce2, s.nonce) for s in pool.accepted}
    assert len(keys) == len(pool.accepted)
    assert len({s.worker for s in pool.accepted}) == 20
    latency = result.latency
    assert latency.samples > 0 and 0 < latency.p50_ms <= latency.p99_ms <= latency.max_ms
    per_second = result.answered / result.window_seconds  # window_seconds is given to the microsecond
    assert result.answered_per_second == pytest.approx(per_second, rel=1e-6 / result.window_seconds)
    assert result.server_cpu_seconds is None and result.disconnects == 0
    assert_no_tasks_left()


async def test_window_bounds_the_submits_in_flight():
    async with LoopbackPool(difficulty=TRIVIAL) as pool:
        gen = loadgen.LoadGenerator(LoadConfig(pool.port, connections=3, window=2, seconds=BOUND_S, count=100, warmup=0))
        await gen.connect_all()
        seen = []
        original = gen.fill

        def watching_fill(conn):
            original(conn)
            seen.append((conn.in_flight, gen.in_flight))

        gen.fill = watching_fill
        await gen.load()
        await gen.close_all()
    assert seen and max(own for own, _ in seen) == 2 and max(total for _, total in seen) <= 6


async def test_count_ends_the_window_early():
    async with LoopbackPool(difficulty=TRIVIAL) as pool:
        result = await run(LoadConfig(pool.port, connections=5, seconds=30, count=300, warmup=0))
    assert result.answered >= 300 and result.submitted <= 300
    assert result.window_seconds < 30


async def test_offered_rate_is_held():
    async with LoopbackPool(difficulty=TRIVIAL) as pool:
        result = await run(LoadConfig(pool.port, connections=10, seconds=BOUND_S, count=300, rate=400, warmup=0.1))
    assert result.mode == "rate" and result.offered_rate == 400
    assert result.answered >= 300 and result.rejected == 0
    # Never faster than offered, however the loop was scheduled: the pacer sends at most what
    # the rate has made due, and catches up at most _MAX_BACKLOG s of it at once (at each
    # edge of the window). Without pacing, 300 submits would take a few milliseconds.
    catch_up = 2 * 400 * loadgen._MAX_BACKLOG + 2
    assert result.submitted <= 400 * result.window_seconds + catch_up
    assert result.window_seconds >= (300 - catch_up) / 400  # ~0.65 s at least


async def test_clean_job_moves_every_connection_to_it():
    async with LoopbackPool(difficulty=TRIVIAL) as pool:
        load = asyncio.create_task(run(LoadConfig(pool.port, connections=10, seconds=BOUND_S, count=1000, warmup=0)))
        await wait_until(lambda: len(pool.accepted) >= 100, step=0)  # mid-window, checked at every turn of the loop
        pool.broadcast(make_job("j2", clean=True, seed=2))
        result = await load
    assert result.answered >= 1000
    late = [s.job_id for s in pool.accepted[-50:]]
    assert late == ["j2"] * 50
    # only submits already in flight when the block changed can be stale: at most one window each
    assert set(result.rejects) <= {"21"} and result.rejected <= 10 * 4


@pytest.mark.parametrize("difficulty", [1e-9, 1e-7])  # fleetd's floor (~4 hashes a share), and ~430
async def test_at_a_real_difficulty_shares_are_ground(difficulty):
    async with LoopbackPool(difficulty=difficulty) as pool:
        result = await run(LoadConfig(pool.port, connections=4, seconds=BOUND_S, count=25, warmup=0))
    assert result.answered >= 25 and result.rejected == 0 and not pool.rejected
    assert result.hashes > 0 and result.difficulties == [difficulty]
    assert all(s.hash_value <= difficulty_to_target(difficulty) for s in pool.accepted)


async def test_a_difficulty_too_high_to_grind_is_refused_not_hung():
    async with LoopbackPool(difficulty=1e-3) as pool:
        async with asyncio.timeout(BOUND_S):  # refused at login: the 60 s window never opens
            result = await run(LoadConfig(pool.port, connections=3, seconds=60))
    assert result.connections_ready == 0 and result.submitted == 0
    assert "difficulty 0.001 needs" in result.error


async def test_idle_mode_reads_server_rss():
    async with LoopbackPool(difficulty=TRIVIAL) as pool:
        # the pool runs in this process, so this process is "the server"
        result = await run(LoadConfig(pool.port, connections=30, idle=True, hold=0.1, server_pid=os.getpid()))
    assert result.mode == "idle" and result.connections_ready == 30 and result.submitted == 0
    assert result.server_rss_kib_before > 0 and result.server_rss_kib_loaded > 0
    assert result.server_rss_kib_per_connection is not None


async def test_nothing_listening_is_reported_not_hung():
    async with LoopbackPool() as pool:
        port = pool.port
    result = await run(LoadConfig(port, connections=3, seconds=0.2, connect_timeout=5))
    assert result.connections_ready == 0 and sum(result.connect_errors.values()) == 3


async def test_command_line_prints_json_and_exits():
    async with LoopbackPool(difficulty=TRIVIAL) as pool:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleetd.sim.loadgen", "--port", str(pool.port), "--connections", "8",
            "--seconds", str(BOUND_S), "--count", "2000", "--warmup", "0.1", "--server-pid", str(os.getpid()),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    result = orjson.loads(out)
    assert result["connections_ready"] == 8 and result["answered"] >= 2000 and result["rejected"] == 0
    assert result["server_cpu_seconds"] > 0 and result["answered_per_server_cpu_second"] > 0
    assert isinstance(result["uvloop"], bool) and result["latency"]["p99_ms"] > 0


def test_command_line_refuses_other_hosts(capsys):
    assert loadgen.main(["--host", "192.0.2.7", "--port", "3333"]) == 2
    assert "not a loopback address" in capsys.readouterr().err
    with pytest.raises(NotLoopbackError):
        LoadConfig(3333, host="10.0.0.1")


@pytest.mark.parametrize("bad", [{"connections": 0}, {"seconds": 0}, {"window": 0}, {"rate": -1}])
def test_out_of_range_options_are_refused(bad):
    with pytest.raises(ValueError, match=f"{next(iter(bad))} = "):
        LoadConfig(3333, **bad)


def accepted_by_server(http_port: int) -> int:
    """Shares the server says it accepted, summed over its rigs (its /metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    rows = re.findall(r'^fleetd_rig_shares_total\{[^}]*result="accepted"[^}]*\} (\d+)$', text, re.M)
    return sum(int(count) for count in rows)


async def test_worker_processes_against_fleetd_serve_answer_every_submit_once(tmp_path):
    with bench_stratum.running_server(bench_stratum.BenchOptions(), tmp_path) as server:
        config = LoadConfig(
            server.port, connections=30, processes=3, seconds=BOUND_S, count=3000, warmup=0, server_pid=server.pid
        )
        async with asyncio.timeout(120):  # a hang guard: the run ends on its count
            result = await run(config)
        assert result.processes == 3 and result.connections_ready == 30 and not result.connect_errors
        # every submit sent (warm-up, window and drain alike) was answered once, and accepted
        assert result.total_submitted == result.total_answered == result.total_accepted > 0
        assert result.protocol_errors == 0 and result.error is None and result.disconnects == 0
        # the window: each worker sends no more than its part of the count, and the parts add up to it
        # (replies to submits sent before the window count as answered in it)
        assert result.submitted == 3000 and result.answered == result.accepted >= 3000 and result.rejected == 0
        assert 0 < result.latency.samples <= 3000 and result.server_cpu_seconds > 0
        # and the server counted the same shares (its metrics may trail the replies a moment)
        async with asyncio.timeout(BOUND_S):
            while accepted_by_server(server.http_port) != result.total_accepted:
                await asyncio.sleep(0.05)


async def test_a_worker_share_splits_the_load_without_losing_any():
    config = LoadConfig(3333, connections=10, processes=3, count=1000, global_cap=100, rate=300.0, cpus=(1, 2))
    shares = [config.worker_share(i) for i in range(3)]
    assert [s.connections for s in shares] == [4, 3, 3]
    assert sum(s.count for s in shares) == 1000 and sum(s.global_cap for s in shares) == 100
    assert sum(s.rate for s in shares) == pytest.approx(300.0)
    assert [s.cpus for s in shares] == [(1,), (2,), (1,)] and {s.processes for s in shares} == {1}
    assert {s.server_pid for s in shares} == {None}  # the coordinator reads the server over the common window
