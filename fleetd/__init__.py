"""fleetd: Stratum v1 pool and fleet telemetry for Bitcoin mining sites."""

__version__ = "0.1.0"
