"""Benchmarks behind ``fleetd bench``: ratios measured in one run, medians of repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from itertools import repeat


def median_per_item(
    run: Callable[..., object], items_per_run: int, loops: int, args: tuple = ()
) -> Callable[[], float]:
    """A sampler: each call times ``loops`` calls of ``run(*args)`` and returns seconds per item.

    ``run`` is called directly, not through a wrapper, so the harness adds the same small
    loop cost to every path and no call overhead of its own.
    """

    def sample() -> float:
        start = time.perf_counter()
        for _ in repeat(None, loops):
            run(*args)
        return (time.perf_counter() - start) / (loops * items_per_run)

    return sample


def interleaved_medians(samplers: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median of ``repeats`` samples per path, taken round-robin so all paths share the machine's noise."""
    samples: dict[str, list[float]] = {name: [] for name in samplers}
    for _ in range(repeats):
        for name, sample in samplers.items():
            samples[name].append(sample())
    return {name: statistics.median(values) for name, values in samples.items()}
