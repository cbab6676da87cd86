"""A real ``fleetd demo`` in a subprocess for the site page's tests and its screenshot: free
loopback ports, a fresh journal in its own working directory, every rig listed before it is
used, always stopped (SIGTERM, then SIGKILL), every wait bounded."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


class DemoError(RuntimeError):
    pass


DEMO_RIGS = 12
DEMO_START_S = 90.0  # every rig connected and listed; a few seconds on an idle machine
DEMO_STOP_S = 15.0  # after SIGTERM; then SIGKILL
DEMO_SECONDS = 900  # the demo stops itself after this, should every cleanup here fail


@dataclass(frozen=True)
class Demo:
    base: str  # http://127.0.0.1:PORT
    rigs: tuple[str, ...]  # every rig /api/v1/rigs lists, sorted
    workdir: Path

    def get(self, path: str, timeout: float = 10.0):
        with urllib.request.urlopen(self.base + path, timeout=timeout) as response:
            return json.loads(response.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fleetd() -> list[str]:
    """The ``fleetd`` command of the interpreter running the tests (the virtualenv's)."""
    script = Path(sys.executable).with_name("fleetd")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "fleetd.cli"]


def _output(workdir: Path) -> str:
    parts = []
    for name in ("stdout", "stderr"):
        text = (workdir / name).read_text(errors="replace") if (workdir / name).exists() else ""
        parts.append(f"--- demo {name} (last 3,000 characters) ---\n{text[-3000:]}")
    return "\n".join(parts)


def _listed_rigs(base: str) -> list[str] | None:
    try:
        with urllib.request.urlopen(base + "/api/v1/rigs", timeout=5) as response:
            return sorted(rig["rig"] for rig in json.loads(response.read())["rigs"])
    except (OSError, ValueError):  # not listening yet, or mid-start
        return None


def stop(process: subprocess.Popen) -> None:
    """SIGTERM (the demo stops its fleet and fleetd cleanly), then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(DEMO_STOP_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(DEMO_STOP_S)


@contextlib.contextmanager
def running_demo(workdir: Path, rigs: int = DEMO_RIGS):
    """``fleetd demo`` with ``rigs`` rigs on free ports, its journal fresh in ``workdir``, until
    /api/v1/rigs lists every rig; stopped afterwards whatever happened."""
    http = free_port()
    argv = [*_fleetd(), "demo", "--rigs", str(rigs), "--stratum", f"127.0.0.1:{free_port()}",
            "--http", f"127.0.0.1:{http}", "--duration", str(DEMO_SECONDS)]  # fmt: skip
    env = {**os.environ, "STATE_DIRECTORY": str(workdir)}  # the journal: fresh, in the test's directory
    with open(workdir / "stdout", "wb") as out, open(workdir / "stderr", "wb") as err:
        process = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    base = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + DEMO_START_S
        listed = None
        while time.monotonic() < deadline and process.poll() is None:
            listed = _listed_rigs(base)
            if listed is not None and len(listed) >= rigs:
                break
            time.sleep(0.2)
        if process.poll() is not None:
            raise DemoError(f"fleetd demo exited with {process.returncode} before its rigs were up\n{_output(workdir)}")
        if listed is None or len(listed) < rigs:
            raise DemoError(f"fleetd demo listed {listed and len(listed)} of {rigs} rigs after {DEMO_START_S:.0f} s\n"
                        f"{_output(workdir)}")  # fmt: skip
        yield Demo(base, tuple(listed), workdir)
    finally:
        stop(process)


