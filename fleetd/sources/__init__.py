"""Job sources behind one interface: demo chain now, bitcoind and upstream later."""

from .base import BlockOutcome, ExtranonceLayout, JobSource, Publish, SolvedBlock, SourceHealth

__all__ = ["BlockOutcome", "ExtranonceLayout", "JobSource", "Publish", "SolvedBlock", "SourceHealth"]
