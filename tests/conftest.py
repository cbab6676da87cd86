"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Examples are held to no wall-clock deadline: a loaded machine may take any time over one,
# and hypothesis would call that a failure (DeadlineExceeded, Flaky, or too_slow).
settings.register_profile("untimed", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("untimed")

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    override = os.environ.get("FLEETD_SHARED_DATA")
    return Path(override) if override else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real block data kept beside the repository (``../shared/data``)."""
    path = _shared_data_dir()
    if not (path / "README.md").is_file():
        pytest.fail(f"real block data not found at {path}; set FLEETD_SHARED_DATA")
    return path


def _shared_tools_dir() -> Path:
    override = os.environ.get("FLEETD_SHARED_TOOLS")
    return Path(override) if override else REPO.parent / "shared" / "tools"


@pytest.fixture(scope="session")
def minerd() -> Path:
    """cpuminer's ``minerd``, built once per session from the source kept beside the repository
    (``../shared/tools/cpuminer``): a real, independent Stratum v1 client. A failed build fails
    the tests that need it, with the build's own error."""
    script = _shared_tools_dir() / "cpuminer" / "build.sh"
    if not script.is_file():
        pytest.fail(f"cpuminer's build.sh not found at {script}; set FLEETD_SHARED_TOOLS")
    try:
        built = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script} did not finish in {exc.timeout} s:\n{exc.stderr or ''}")
    if built.returncode != 0:
        pytest.fail(f"{script} failed (exit {built.returncode}):\n{built.stderr}")
    printed = built.stdout.strip().splitlines()
    path = Path(printed[-1]) if printed else None
    if path is None or not os.access(path, os.X_OK):
        pytest.fail(f"{script} printed {built.stdout!r}, not the path of an executable:\n{built.stderr}")
    return path


@pytest.fixture(scope="session")
def real_blocks(shared_data):
    """Every block in the shared data files, parsed."""
    from fleetd.chain.serialize import read_blocks

    blocks = []
    for name in sorted(p.name for p in shared_data.glob("*.dat.bz2")):
        blocks.extend(read_blocks(shared_data / name))
    assert len(blocks) == 6, f"expected 6 real blocks, found {len(blocks)}"
    return blocks


@pytest.fixture(params=["portable", "shani"])
def native_impl(request):  # the choice holds for a whole test, hypothesis examples included
    """Run a test once per native implementation, restoring the default afterwards."""
    from fleetd import native

    if request.param not in native.available():
        pytest.skip(f"this CPU cannot run the {request.param} implementation")
    previous = native.IMPL
    native.select(request.param)
    yield native
    native.select(previous)


@pytest.fixture
async def fleetd():
    """fleetd with the demo chain on loopback ports, stopped after the test."""
    from server_support import make_config, start_fleetd

    running = await start_fleetd(make_config())
    yield running
    await running.runner.cleanup()


@pytest.fixture(autouse=True)
def _restore_logging_config():
    """A test that runs a CLI entry point configures structlog onto pytest's captured
    stream; put the configuration back so later tests never log into a closed file."""
    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(autouse=True)
def _journal_in_tmp(tmp_path_factory, monkeypatch):
    """Each test's fleetd keeps its journal in a directory of its own, never in the working
    directory (``[journal] path`` defaults to ``$STATE_DIRECTORY``)."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path_factory.mktemp("state")))
