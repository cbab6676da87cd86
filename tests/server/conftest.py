import pytest

from server_support import make_config, start_fleetd


@pytest.fixture
async def fleetd():
    """fleetd with the demo chain on loopback ports, stopped after the test."""
    running = await start_fleetd(make_config())
    yield running
    await running.runner.cleanup()
