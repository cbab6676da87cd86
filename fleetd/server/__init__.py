"""asyncio transport: the Stratum listener and per-connection protocols."""
