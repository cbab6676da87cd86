"""The durable journal: found blocks, per-rig minute rollups and rig records in SQLite (WAL)."""
