"""pyasic's global settings for a test, restored afterwards (they are whole seconds)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping


FAST_PYASIC = {  # whole seconds; 1 is pyasic's floor
    "factory_get_timeout": 1,
    "factory_get_retries": 1,
    "api_function_timeout": 1,
    "get_data_retries": 1,
    "btminer_v3_ping_timeout": 1,
}


@contextlib.contextmanager
def fast_pyasic_settings() -> Iterator[None]:
    """pyasic held to its shortest timeouts and a single retry, for a fast suite."""
    with pyasic_settings(FAST_PYASIC):
        yield


@contextlib.contextmanager
def pyasic_settings(values: Mapping[str, int]) -> Iterator[None]:
    from fleetd.rigs.poller import load_pyasic  # imports pyasic with fleetd's logging kept

    settings = load_pyasic().settings
    previous = {key: settings.get(key) for key in values}
    for key, value in values.items():
        settings.update(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            settings.update(key, value)
