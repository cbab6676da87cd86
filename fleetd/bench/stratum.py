"""``fleetd bench stratum``: ``fleetd serve`` under load from a separate load-generator process.

The server runs as a subprocess on loopback (demo source, difficulty pinned at fleetd's
floor of 1e-9, network difficulty high so no share becomes a block and the chain stays
put). ``python -m fleetd.sim.loadgen`` drives it and reads the server's CPU time and RSS
from /proc over its measured window, so the verdict is a ratio measured in the run:
answered submits per server CPU-second. Latency is taken at a fixed offered rate, and
memory per idle connection on a fresh server (RSS with N connections minus RSS with
none, over N).

Where the OS allows, the server is pinned to one CPU and the load generator's processes
(``loadgen_processes``, by default one per remaining CPU) to the others, so neither steals
the other's CPU; the report gives the load generator's cores and CPU per submit next to
the server's, so a reader can tell which side set the pace.

``--proxy`` runs the same load, in the same run, against ``fleetd serve`` directly and
through a proxy fleetd (``fleetd serve`` with the upstream source) whose upstream is a
third fleetd pinning it at ``UPSTREAM_FACTOR`` times the rigs' difficulty, so one rig
share in that many is forwarded. It reports the proxy's answered submits per proxy
CPU-second and the p99 latency the proxy adds over the direct connection. Direct and
proxied runs alternate, so drift in the machine's load hits both alike.

``--journal`` runs the same load, in the same run, against two ``fleetd serve`` whose
configurations differ only in ``[journal] enabled``, alternating between them (the first of
each pair swaps each repeat), and reports each one's answered submits per server CPU-second,
their ratio against ``JOURNAL_TARGET``, and the "on" server's ``fleetd_journal_*`` figures
from /metrics at the end. Each connection logs in as a worker name of its own, so each is a
rig the journal rolls up every flush.
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.request
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from fleetd.sim import procfs
from fleetd.sim.loadgen import pin, raise_fd_limit

THROUGHPUT_TARGET = 100_000.0  # answered submits per server CPU-second
LATENCY_RATE = 5_000.0  # offered submits per second for the latency runs
P99_TARGET_MS = 20.0
RSS_TARGET_KIB = 20.0  # per idle connection, with IDLE_CONNECTIONS open
IDLE_CONNECTIONS = 10_000
DIFFICULTY = 1e-9  # fleetd's floor: ~4 hashes per share for the load generator
NETWORK_DIFFICULTY = 1e12  # a share meeting it would be a block and move the demo chain
UPSTREAM_FACTOR = 8  # --proxy: the upstream's difficulty over the rigs'; one share in 8 is forwarded
JOURNAL_TARGET = 0.90  # --journal: submits per CPU-second with the journal on over off (a cost under 10 %)
JOURNAL_METRICS = ("fleetd_journal_up", "fleetd_journal_file_bytes", "fleetd_journal_pending_rows",
                   "fleetd_journal_dropped_writes_total", "fleetd_journal_cpu_seconds_total",
                   "process_cpu_seconds_total")  # fmt: skip
_FD_HEADROOM = 256
_LOADGEN_BUSY = 0.85  # of a core per load-generator process: past it the generator may set the pace


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class BenchOptions:
    connections: int = 1000
    seconds: float = 5.0
    repeats: int = 3
    window: int = 4  # unanswered submits per connection
    rate: float = LATENCY_RATE
    idle_connections: int = IDLE_CONNECTIONS
    warmup: float = 0.5
    submits: int | None = None  # end each measured window after this many answered submits (seconds bound it)
    python: str = sys.executable
    startup_timeout: float = 30.0
    proxy: bool = False  # also run the load through a proxy fleetd (upstream source)
    journal: bool = False  # the same load on a fleetd with the journal on and one with it off
    loadgen_processes: int | None = None  # None: one per CPU the server is not pinned to
    pin: bool = True  # server on one CPU, the load generator on the others, where the OS allows


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """Where the server and the load generator run: apart, so neither takes the other's CPU."""

    server: tuple[int, ...] | None  # None: not pinned
    loadgen: tuple[int, ...] | None
    loadgen_processes: int

    @staticmethod
    def for_machine(options: BenchOptions) -> CpuPlan:
        try:
            usable = sorted(os.sched_getaffinity(0))
        except AttributeError:  # no affinity on this OS: nothing pinned
            usable = list(range(os.cpu_count() or 1))
            server, loadgen = None, None
        else:
            apart = options.pin and len(usable) >= 2 and not options.proxy  # --proxy runs three servers
            server, loadgen = (tuple(usable[:1]), tuple(usable[1:])) if apart else (None, None)
        spare = len(loadgen) if loadgen else max(1, len(usable) - 1)
        return CpuPlan(server, loadgen, options.loadgen_processes or spare)

    def loadgen_args(self) -> tuple[str, ...]:
        cpus = () if self.loadgen is None else ("--cpus", ",".join(map(str, self.loadgen)))
        return ("--processes", str(self.loadgen_processes), *cpus)


@dataclass(frozen=True, slots=True)
class Summary:
    throughput_runs: tuple[dict, ...]
    latency_runs: tuple[dict, ...]
    idle: dict | None  # None when --idle-connections 0
    server_cpus: tuple[int, ...] | None = None  # what the server was pinned to; None: not pinned

    @property
    def answered_per_second(self) -> float:
        return statistics.median(r["answered_per_second"] for r in self.throughput_runs)

    @property
    def answered_per_server_cpu_second(self) -> float:
        return statistics.median(r["answered_per_server_cpu_second"] or 0.0 for r in self.throughput_runs)

    @property
    def server_cores(self) -> float:
        return statistics.median(r["server_cpu_seconds"] / r["window_seconds"] for r in self.throughput_runs)

    @property
    def loadgen_cores(self) -> float:
        return statistics.median(r["loadgen_cpu_seconds"] / r["window_seconds"] for r in self.throughput_runs)

    @property
    def server_us_per_submit(self) -> float:
        return statistics.median(1e6 * r["server_cpu_seconds"] / max(1, r["answered"]) for r in self.throughput_runs)

    @property
    def loadgen_us_per_submit(self) -> float:
        return statistics.median(1e6 * r["loadgen_cpu_seconds"] / max(1, r["answered"]) for r in self.throughput_runs)

    def loadgen_line(self) -> str:
        """The load generator's own cost, so a reader sees it was not what set the pace."""
        first = self.throughput_runs[0]
        processes = first["processes"]
        where = "" if not first["cpus"] else f" on CPU {','.join(map(str, first['cpus']))}"
        return (
            f"{self.loadgen_cores:.2f} cores of {processes} process{'es' if processes > 1 else ''}{where},"
            f" {self.loadgen_us_per_submit:.1f} µs per submit"
        )

    def latency_ms(self, key: str) -> float | None:
        values = [r["latency"][key] for r in self.latency_runs if r["latency"][key] is not None]
        return statistics.median(values) if values else None

    @property
    def rss_per_connection_kib(self) -> float | None:
        return None if self.idle is None else self.idle["server_rss_kib_per_connection"]


def server_config(
    stratum_port: int, http_port: int, difficulty: float = DIFFICULTY, upstream_port: int | None = None,
    journal: bool | None = None, one_address: int | None = None,
) -> str:
    """The TOML ``fleetd serve`` runs with: loopback only, difficulty pinned, a chain that stays put.

    With ``upstream_port``, the server is a proxy mining through the fleetd listening there; with
    ``journal``, ``[journal] enabled`` says so (None: fleetd's default); with ``one_address``, the
    per-address limits admit that many connections from the one loopback address at once
    (None: fleetd's defaults, whose new-connection burst of 500 turns the rest away for a while).
    """
    source = (
        f'kind = "upstream"\n\n[source.upstream]\npools = ["stratum+tcp://127.0.0.1:{upstream_port}"]\n'
        'user = "bench"\nstall_seconds = 3600.0  # the bench upstream sends no new jobs\n'
        if upstream_port is not None
        else f'kind = "demo"\nnetwork_difficulty = {NETWORK_DIFFICULTY!r}\n'
        "block_interval_seconds = 86400.0\nrefresh_seconds = 86400.0\n"
    )
    journal_section = "" if journal is None else f"[journal]\nenabled = {str(journal).lower()}\n\n"
    limits = (
        ""
        if one_address is None
        else "".join(f"{key} = {max(one_address + _FD_HEADROOM, default)}\n" for key, default in (
            ("max_connections_per_ip", 1_000), ("new_connections_burst_per_ip", 500),
            ("new_connections_per_ip_per_second", 50), ("max_workers_per_ip", 2_000)))
    )  # fmt: skip
    return f"""\
[stratum]
listen = "127.0.0.1:{stratum_port}"
min_difficulty = {difficulty!r}
max_difficulty = {difficulty!r}  # pinned: vardiff must not raise it under a flood of shares
start_difficulty = {difficulty!r}
login_timeout_seconds = 600.0
shutdown_grace_seconds = 2.0
{limits}
[http]
listen = "127.0.0.1:{http_port}"

[source]
{source}
{journal_section}[log]
level = "warning"
format = "json"
"""


@dataclass(frozen=True, slots=True)
class Server:
    pid: int
    port: int
    log: Path
    http_port: int = 0


@contextlib.contextmanager
def running_server(
    options: BenchOptions, workdir: Path, *, difficulty: float = DIFFICULTY, upstream: Server | None = None,
    cpus: tuple[int, ...] | None = None, config: Callable[[int, int], str] | None = None,
) -> Iterator[Server]:
    """``fleetd serve`` as a subprocess, listening when this yields; terminated afterwards.

    With ``upstream``, a proxy fleetd mining through that server; with ``cpus``, pinned to them;
    with ``config``, the TOML it returns for (Stratum port, HTTP port) instead of ``server_config``'s.
    """
    from fleetd.config import ConfigError, parse

    stratum_port, http_port = _free_port(), _free_port()
    if config is not None:
        text = config(stratum_port, http_port)
    else:
        # The load comes from one loopback address: the per-address limits must let all of it in.
        everyone = max(options.connections, options.idle_connections)
        text = server_config(stratum_port, http_port, difficulty, upstream.port if upstream else None,
                             one_address=everyone)  # fmt: skip
    config_path = workdir / f"fleetd-{stratum_port}.toml"
    config_path.write_text(text)
    try:
        parse(text, str(config_path))
    except ConfigError as exc:  # a key this version does not know: say which, do not start
        raise BenchError(f"the benchmark's server configuration is refused: {exc}") from None
    log_path = workdir / f"fleetd-{stratum_port}.log"
    # Each server keeps its journal in a state directory of its own, as systemd would give it.
    state = workdir / f"state-{stratum_port}"
    state.mkdir()
    command = [options.python, "-m", "fleetd", "serve", "--config", str(config_path)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "STATE_DIRECTORY": str(state)})  # fmt: skip
    try:
        _wait_for_port(proc, stratum_port, options.startup_timeout, log_path)
        # a proxy listens at once and has work once the upstream answered; every server's
        # /metrics is read, so its HTTP listener must be up too
        _wait_for_health(proc, http_port, options.startup_timeout, log_path)
        pin(cpus, proc.pid)  # every thread it has started; where affinity is not available, unpinned
        yield Server(proc.pid, stratum_port, log_path, http_port)
    finally:
        _stop(proc)


def run_loadgen(options: BenchOptions, server: Server, *args: str, bound: float) -> dict:
    """One load generator (a process, or a coordinator and its workers); its JSON result."""
    command = [options.python, "-m", "fleetd.sim.loadgen", "--port", str(server.port), "--server-pid", str(server.pid)]
    try:
        done = subprocess.run([*command, *args], capture_output=True, timeout=bound + 30, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError(f"the load generator did not finish within {bound + 30:.0f} s") from None
    if done.returncode != 0 or not done.stdout.strip():
        raise BenchError(
            f"the load generator failed (exit {done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}"
            f"{_log_tail(server.log)}"
        )
    result = orjson.loads(done.stdout)
    if result.get("error"):
        raise BenchError(f"the load generator reports: {result['error']}{_log_tail(server.log)}")
    return result


def measure(options: BenchOptions) -> Summary:
    if options.idle_connections:
        needed = options.idle_connections + _FD_HEADROOM
        if raise_fd_limit(needed) < needed:  # children inherit the raised limit
            raise BenchError(f"{options.idle_connections} idle connections need {needed} open files; raise ulimit -Hn")
    plan = CpuPlan.for_machine(options)
    common, bound = (*_load_args(options), *plan.loadgen_args()), options.warmup + options.seconds + 90
    with tempfile.TemporaryDirectory(prefix="fleetd-bench-") as tmp:
        workdir = Path(tmp)
        with running_server(options, workdir, cpus=plan.server) as server:
            throughput = tuple(run_loadgen(options, server, *common, bound=bound) for _ in range(options.repeats))
            latency = tuple(
                run_loadgen(options, server, *common, "--rate", str(options.rate), bound=bound)
                for _ in range(options.repeats)
            )
        idle = None
        if options.idle_connections:
            with running_server(options, workdir) as fresh:  # a fresh heap: earlier load would blur the RSS
                idle = run_loadgen(
                    options, fresh, "--idle", "--connections", str(options.idle_connections), "--hold", "1.0",
                    bound=150,
                )  # fmt: skip
    return Summary(throughput, latency, idle, plan.server)


def _load_args(options: BenchOptions) -> tuple[str, ...]:
    """The load generator's options every measured run shares."""
    args = ("--connections", str(options.connections), "--seconds", str(options.seconds),
            "--window", str(options.window), "--warmup", str(options.warmup))  # fmt: skip
    return args if options.submits is None else (*args, "--count", str(options.submits))


def _runs(options: BenchOptions) -> str:
    """What each median is taken over, as the report says it."""
    window = f"{options.seconds:g} s" if options.submits is None else f"{options.submits:,} submits"
    return f"median of {options.repeats} run{'s' if options.repeats > 1 else ''} of {window}"


def report(options: BenchOptions | None = None) -> str:
    options = options or BenchOptions()
    if options.proxy:
        return format_proxy_report(options, measure_proxy(options))
    if options.journal:
        return format_journal_report(options, measure_journal(options))
    summary = measure(options)
    return format_report(options, summary)


# -- --proxy ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProxySummary:
    direct: Summary
    proxied: Summary
    upstream_cpu_seconds: float  # the upstream fleetd's CPU over the proxied throughput windows
    proxy_health: dict  # the proxy's /healthz at the end

    def added_p99_ms(self) -> float | None:
        direct, proxied = self.direct.latency_ms("p99_ms"), self.proxied.latency_ms("p99_ms")
        return None if direct is None or proxied is None else proxied - direct


def measure_proxy(options: BenchOptions) -> ProxySummary:
    common = (*_load_args(options), *CpuPlan.for_machine(options).loadgen_args())
    bound = options.warmup + options.seconds + 90
    runs: dict[str, list[dict]] = {"direct": [], "proxy": [], "direct_rate": [], "proxy_rate": []}
    upstream_cpu = 0.0
    with tempfile.TemporaryDirectory(prefix="fleetd-bench-") as tmp:
        workdir = Path(tmp)
        with (
            running_server(options, workdir) as direct,
            running_server(options, workdir, difficulty=DIFFICULTY * UPSTREAM_FACTOR) as upstream,
            running_server(options, workdir, upstream=upstream) as proxy,
        ):
            for _ in range(options.repeats):  # alternate, so drift hits both alike
                runs["direct"].append(run_loadgen(options, direct, *common, bound=bound))
                before = procfs.cpu_seconds(upstream.pid)
                runs["proxy"].append(run_loadgen(options, proxy, *common, bound=bound))
                upstream_cpu += procfs.cpu_seconds(upstream.pid) - before
            rate = ("--rate", str(options.rate))
            for _ in range(options.repeats):
                runs["direct_rate"].append(run_loadgen(options, direct, *common, *rate, bound=bound))
                runs["proxy_rate"].append(run_loadgen(options, proxy, *common, *rate, bound=bound))
            health = _health(proxy.http_port)
    return ProxySummary(
        direct=Summary(tuple(runs["direct"]), tuple(runs["direct_rate"]), None),
        proxied=Summary(tuple(runs["proxy"]), tuple(runs["proxy_rate"]), None),
        upstream_cpu_seconds=upstream_cpu,
        proxy_health=health,
    )


def format_proxy_report(options: BenchOptions, summary: ProxySummary) -> str:
    direct, proxied = summary.direct, summary.proxied
    first = direct.throughput_runs[0]
    runs = _runs(options)
    d_cpu, p_cpu = direct.answered_per_server_cpu_second, proxied.answered_per_server_cpu_second
    ratio = p_cpu / d_cpu if d_cpu else 0.0
    windows = sum(r["window_seconds"] for r in proxied.throughput_runs)
    upstream_cores = summary.upstream_cpu_seconds / windows if windows else 0.0
    header = f"{'':41}{'direct':>12}   {'proxy':>12}"
    lines = [
        f"fleetd bench stratum --proxy: the same load on fleetd serve directly and through a proxy fleetd"
        f" (upstream source) to an upstream fleetd at {UPSTREAM_FACTOR}x the rigs' difficulty ({DIFFICULTY:g});"
        f" load generator ({'uvloop' if first['uvloop'] else 'asyncio'}) on loopback, {os.cpu_count()} CPUs",
        "",
        f"throughput: {options.connections:,} connections, {options.window} submits in flight each, {runs}",
        header,
        _row("answered submits/s", f"{direct.answered_per_second:,.0f}", f"{proxied.answered_per_second:,.0f}"),
        _row("answered submits per CPU-second", f"{d_cpu:,.0f}", f"{p_cpu:,.0f}")
        + f"   (proxy/direct {ratio:.2f}; "
        + _verdict(p_cpu >= THROUGHPUT_TARGET, f"target >= {THROUGHPUT_TARGET:,.0f}") + ")",
        _row("  each run", _spread(direct.throughput_runs, "answered_per_server_cpu_second"),
             _spread(proxied.throughput_runs, "answered_per_server_cpu_second")),
        _row("server CPU in use (cores)", f"{direct.server_cores:.2f}", f"{proxied.server_cores:.2f}")
        + f"   (upstream behind the proxy: {upstream_cores:.2f})",
        _row("load generator (cores)", f"{direct.loadgen_cores:.2f}", f"{proxied.loadgen_cores:.2f}")
        + f"   ({direct.loadgen_us_per_submit:.1f} / {proxied.loadgen_us_per_submit:.1f} µs per submit)",
        _row("accepted / rejected", f"{_sum(direct.throughput_runs, 'accepted'):,} / {_sum(direct.throughput_runs, 'rejected'):,}",
             f"{_sum(proxied.throughput_runs, 'accepted'):,} / {_sum(proxied.throughput_runs, 'rejected'):,}"),
        f"  proxy's upstream session: {summary.proxy_health.get('source', {}).get('detail', 'no /healthz answer')}",
    ]  # fmt: skip
    added = summary.added_p99_ms()
    lines += [
        "",
        f"latency at an offered {options.rate:,.0f} submits/s: {options.connections:,} connections, {runs}",
        header,
        _row("answered submits/s", f"{_median(direct.latency_runs, 'answered_per_second'):,.0f}",
             f"{_median(proxied.latency_runs, 'answered_per_second'):,.0f}"),
        _row("p50 send-to-reply (ms)", _ms(direct.latency_ms("p50_ms")), _ms(proxied.latency_ms("p50_ms"))),
        _row("p99 send-to-reply (ms)", _ms(direct.latency_ms("p99_ms")), _ms(proxied.latency_ms("p99_ms"))),
        _row("p99 added by the proxy (ms)", "", "n/a" if added is None else f"{added:+.2f}"),
    ]  # fmt: skip
    problems = _problems(direct, options) + [f"proxy {p}" for p in _problems(proxied, options)]
    if problems:
        lines += ["", *(f"warning: {p}" for p in problems)]
    return "\n".join(lines)


# -- --journal ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JournalSummary:
    on: Summary  # the server with [journal] enabled = true
    off: Summary  # the same configuration with enabled = false
    on_metrics: dict[str, float]  # fleetd_journal_* on the "on" server's /metrics at the end
    off_metrics: dict[str, float]  # the same names on the "off" server's: none expected
    on_metrics_before: dict[str, float]  # the "on" server's before the first run

    @property
    def journal_cpu_share(self) -> float | None:
        """The journal's own CPU over the "on" server's, across the runs: the cost measured
        inside the server, free of the run-to-run noise of two throughputs."""
        def spent(name):
            return self.on_metrics.get(name, 0.0) - self.on_metrics_before.get(name, 0.0)

        process = spent("process_cpu_seconds_total")
        return spent("fleetd_journal_cpu_seconds_total") / process if process > 0 else None

    @property
    def ratio(self) -> float:
        """Answered submits per server CPU-second, journal on over off (medians)."""
        off = self.off.answered_per_server_cpu_second
        return self.on.answered_per_server_cpu_second / off if off else 0.0

    def pair_ratios(self) -> list[float]:
        """On over off for each repeat's pair of runs, back to back."""
        key = "answered_per_server_cpu_second"
        return [(a[key] or 0.0) / b[key] if b[key] else 0.0 for a, b in zip(self.on.throughput_runs, self.off.throughput_runs)]


def journal_config(journal: bool, connections: int) -> Callable[[int, int], str]:
    """``server_config`` with ``[journal] enabled`` set, admitting every connection of the load
    generator at once: the on and off servers differ in nothing else."""
    return lambda stratum_port, http_port: server_config(stratum_port, http_port, journal=journal, one_address=connections)


def measure_journal(options: BenchOptions) -> JournalSummary:
    plan = CpuPlan.for_machine(options)  # both servers on the server's CPU: only one is loaded at a time
    common, bound = (*_load_args(options), *plan.loadgen_args()), options.warmup + options.seconds + 90
    runs: dict[bool, list[dict]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="fleetd-bench-") as tmp:
        workdir = Path(tmp)
        with (
            running_server(options, workdir, cpus=plan.server, config=journal_config(True, options.connections)) as on,
            running_server(options, workdir, cpus=plan.server, config=journal_config(False, options.connections)) as off,
        ):
            servers = {True: on, False: off}
            on_before = _journal_metrics(on.http_port)
            for i in range(options.repeats):  # alternate, and swap which goes first, so drift hits both alike
                for enabled in (True, False) if i % 2 == 0 else (False, True):
                    runs[enabled].append(run_loadgen(options, servers[enabled], *common, bound=bound))
            on_metrics, off_metrics = _journal_metrics(on.http_port), _journal_metrics(off.http_port)
    return JournalSummary(
        on=Summary(tuple(runs[True]), (), None, plan.server),
        off=Summary(tuple(runs[False]), (), None, plan.server),
        on_metrics=on_metrics,
        off_metrics=off_metrics,
        on_metrics_before=on_before,
    )


def _journal_metrics(http_port: int) -> dict[str, float]:
    """The ``JOURNAL_METRICS`` samples on a server's /metrics (a name it does not export is absent)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except (OSError, ValueError) as exc:
        raise BenchError(f"could not read /metrics on 127.0.0.1:{http_port}: {exc}") from None
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in JOURNAL_METRICS:
            found[name] = float(value)
    return found


def format_journal_report(options: BenchOptions, summary: JournalSummary) -> str:
    on, off = summary.on, summary.off
    first = on.throughput_runs[0]
    on_cpu, off_cpu, ratio = on.answered_per_server_cpu_second, off.answered_per_server_cpu_second, summary.ratio
    header = f"{'':41}{'journal on':>12}   {'journal off':>12}"
    lines = [
        "fleetd bench stratum --journal: the same load on two fleetd serve whose configurations differ only in"
        f" [journal] enabled (demo source, difficulty {DIFFICULTY:g}, flush every second);"
        f" load generator ({'uvloop' if first['uvloop'] else 'asyncio'}) on loopback, {os.cpu_count()} CPUs",
        "",
        f"throughput: {options.connections:,} connections, each a rig of its own (one worker name each),"
        f" {options.window} submits in flight each, {_runs(options)} on each server, on and off alternating",
        header,
        _row("answered submits/s", f"{on.answered_per_second:,.0f}", f"{off.answered_per_second:,.0f}"),
        _row("answered submits per server CPU-second", f"{on_cpu:,.0f}", f"{off_cpu:,.0f}"),
        _row("  each run", _spread(on.throughput_runs, "answered_per_server_cpu_second"),
             _spread(off.throughput_runs, "answered_per_server_cpu_second")),
        _row("server CPU in use (cores)", f"{on.server_cores:.2f}", f"{off.server_cores:.2f}") + _pinned(on),
        _row("server CPU per answered submit (µs)", f"{on.server_us_per_submit:.1f}", f"{off.server_us_per_submit:.1f}"),
        _row("load generator (cores)", f"{on.loadgen_cores:.2f}", f"{off.loadgen_cores:.2f}")
        + f"   ({on.loadgen_us_per_submit:.1f} / {off.loadgen_us_per_submit:.1f} µs per submit)",
        _row("accepted / rejected", f"{_sum(on.throughput_runs, 'accepted'):,} / {_sum(on.throughput_runs, 'rejected'):,}",
             f"{_sum(off.throughput_runs, 'accepted'):,} / {_sum(off.throughput_runs, 'rejected'):,}"),
        f"  {'on/off (medians)':<39}{ratio:>12.3f}   (journal cost {1 - ratio:+.1%}; "
        + _verdict(ratio >= JOURNAL_TARGET, f"target cost < {1 - JOURNAL_TARGET:.0%}, on/off >= {JOURNAL_TARGET:.2f}") + ")",
        f"  {'  each pair':<39}{', '.join(f'{r:.3f}' for r in summary.pair_ratios()):>12}",
        _journal_share_line(summary.journal_cpu_share),
        "",
        "journal on the \"on\" server's /metrics at the end:",
        *(f"  {name:<39}{_metric(summary.on_metrics.get(name)):>12}" for name in JOURNAL_METRICS
          if name.startswith("fleetd_journal_")),
        "journal on the \"off\" server's /metrics at the end: "
        + (", ".join(f"{k} {_metric(v)}" for k, v in summary.off_metrics.items() if k.startswith("fleetd_journal_"))
           or "no fleetd_journal_* (journal off)"),
    ]  # fmt: skip
    problems = [f"journal on: {p}" for p in _problems(on, options)] + [f"journal off: {p}" for p in _problems(off, options)]
    if problems:
        lines += ["", *(f"warning: {p}" for p in problems)]
    return "\n".join(lines)


def _journal_share_line(share: float | None) -> str:
    label = "journal's share of the on server's CPU"
    if share is None:
        return f"  {label:<39}{'unknown':>12}"
    verdict = _verdict(share < 1 - JOURNAL_TARGET, f"target < {1 - JOURNAL_TARGET:.0%}")
    return f"  {label:<39}{share:>12.1%}   (fleetd_journal_cpu_seconds_total over process_cpu_seconds_total; {verdict})"


def _metric(value: float | None) -> str:
    return "absent" if value is None else f"{value:,.0f}"


def _row(label: str, direct: str, proxied: str) -> str:
    return f"  {label:<39}{direct:>12}   {proxied:>12}"


def _median(runs: tuple[dict, ...], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _health(http_port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=5) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as exc:  # 503 when degraded: the body still says why
        return orjson.loads(exc.read() or b"{}")
    except (OSError, ValueError):
        return {}


def _wait_for_health(proc: subprocess.Popen, http_port: int, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"fleetd serve exited with status {proc.returncode}{_log_tail(log)}")
        if _health(http_port).get("status") == "ok":
            return
        time.sleep(0.05)
    raise BenchError(f"fleetd serve was not healthy (no work, or no HTTP listener) within {timeout:g} s{_log_tail(log)}")


def format_report(options: BenchOptions, summary: Summary) -> str:
    first = summary.throughput_runs[0]
    runs = _runs(options)
    per_cpu = summary.answered_per_server_cpu_second
    lines = [
        f"fleetd bench stratum: fleetd serve (demo source, difficulty {DIFFICULTY:g}) and a separate load generator"
        f" ({'uvloop' if first['uvloop'] else 'asyncio'}) on loopback, {os.cpu_count()} CPUs",
        "",
        f"throughput: {options.connections:,} connections, {options.window} submits in flight each, {runs}",
        f"  answered submits/s                       {summary.answered_per_second:>12,.0f}",
        f"  answered submits per server CPU-second   {per_cpu:>12,.0f}   "
        + _verdict(per_cpu >= THROUGHPUT_TARGET, f"target >= {THROUGHPUT_TARGET:,.0f}"),
        f"    each run                               {_spread(summary.throughput_runs, 'answered_per_server_cpu_second')}",
        f"  server CPU in use                        {summary.server_cores:>12.2f} cores{_pinned(summary)}",
        f"  server CPU per answered submit           {summary.server_us_per_submit:>12.1f} µs",
        f"  load generator                           {summary.loadgen_line()}",
        f"  accepted / rejected                      {_sum(summary.throughput_runs, 'accepted'):>12,}"
        f" / {_sum(summary.throughput_runs, 'rejected'):,}",
        "",
        f"latency at an offered {options.rate:,.0f} submits/s: {options.connections:,} connections, {runs}",
    ]
    p50, p99 = summary.latency_ms("p50_ms"), summary.latency_ms("p99_ms")
    achieved = statistics.median(r["answered_per_second"] for r in summary.latency_runs)
    lines += [
        f"  answered submits/s                       {achieved:>12,.0f}",
        f"  p50 send-to-reply                        {_ms(p50):>12} ms",
        f"  p99 send-to-reply                        {_ms(p99):>12} ms   "
        + _verdict(p99 is not None and p99 <= P99_TARGET_MS, f"target <= {P99_TARGET_MS:g} ms"),
    ]
    idle = summary.idle
    if idle is not None:
        per_connection = summary.rss_per_connection_kib
        lines += [
            "",
            f"memory: {idle['connections_ready']:,} idle connections (subscribed, authorized) on a fresh server",
            f"  server RSS without / with them           {idle['server_rss_kib_before']:>12,} KiB"
            f" / {idle['server_rss_kib_loaded']:,} KiB",
            f"  RSS per idle connection                  {per_connection:>12.2f} KiB  "
            + _verdict(per_connection <= RSS_TARGET_KIB, f"target <= {RSS_TARGET_KIB:g} KiB"),
        ]
        if idle["connections_ready"] < options.idle_connections:
            lines.append(f"  only {idle['connections_ready']:,} of {options.idle_connections:,} connections opened")
    problems = _problems(summary, options)
    if problems:
        lines += ["", *(f"warning: {p}" for p in problems)]
    return "\n".join(lines)


def _pinned(summary: Summary) -> str:
    cpus = summary.server_cpus
    return "" if not cpus else f"   (pinned to CPU {','.join(map(str, cpus))})"


def _problems(summary: Summary, options: BenchOptions) -> list[str]:
    problems = []
    for name, runs in (("throughput", summary.throughput_runs), ("latency", summary.latency_runs)):
        for r in runs:
            if r["connections_ready"] < options.connections:
                problems.append(f"{name} run: {r['connections_ready']} of {options.connections} connections ready")
            if r["rejected"]:
                problems.append(f"{name} run: {r['rejected']} submits rejected (by code: {r['rejects']})")
            if r["disconnects"]:
                problems.append(f"{name} run: the server dropped {r['disconnects']} connections")
            if r["total_answered"] != r["total_submitted"] or r["protocol_errors"]:
                problems.append(f"{name} run: {r['total_submitted']} submits sent, {r['total_answered']} answered,"
                                f" {r['protocol_errors']} protocol errors")  # fmt: skip
    busiest = max(r["loadgen_cpu_seconds"] / max(r["window_seconds"], 1e-9) / r["processes"] for r in summary.throughput_runs)
    if busiest > _LOADGEN_BUSY:
        problems.append(f"the load generator's processes were {busiest:.0%} busy: it may be what set the pace")
    if any(r["skipped_offers"] for r in summary.latency_runs):
        problems.append("latency runs could not offer the full rate (every window was full)")
    return problems


def _spread(runs: tuple[dict, ...], key: str) -> str:
    return ", ".join(f"{r[key] or 0:,.0f}" for r in runs)


def _verdict(met: bool, target: str) -> str:
    return f"{target}: {'met' if met else 'NOT met'}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _sum(runs: tuple[dict, ...], key: str) -> int:
    return sum(r[key] for r in runs)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(proc: subprocess.Popen, port: int, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"fleetd serve exited with status {proc.returncode} before listening{_log_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise BenchError(f"fleetd serve did not listen on 127.0.0.1:{port} within {timeout:g} s{_log_tail(log)}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: the graceful shutdown path
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _log_tail(log: Path, lines: int = 20) -> str:
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n--- fleetd serve log (tail) ---\n" + "\n".join(tail) if tail else ""
