"""An upstream source that cannot reach its pool logs the pool, never the account's password."""

from __future__ import annotations

import asyncio
import socket

import structlog
from structlog.testing import capture_logs

from fleetd.sources.upstream import UpstreamConfig, UpstreamSource


def closed_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on return: connecting is refused


async def test_a_pool_that_refuses_the_connection_is_logged_without_credentials():
    import logging

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))  # restored by conftest
    port = closed_loopback_port()
    config = UpstreamConfig(
        pools=(f"stratum+tcp://127.0.0.1:{port}",), user="alice.rigs", password="s3cretpw", failover_seconds=1.0
    )
    source = UpstreamSource(config)
    with capture_logs() as logs:
        task = asyncio.create_task(source.run(lambda *args, **kwargs: None))
        try:
            for _ in range(500):
                if any(entry["event"] == "upstream_unusable" for entry in logs):
                    break
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    text = repr(logs) + repr(source.health()) if hasattr(source, "health") else repr(logs)
    assert any(entry["event"] == "upstream_unusable" for entry in logs)
    assert f"stratum+tcp://127.0.0.1:{port}" in text
    assert "s3cretpw" not in text
