"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
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
