"""pyasic's global settings for a test, restored afterwards (they are whole seconds)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping


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
