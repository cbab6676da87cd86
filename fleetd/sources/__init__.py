"""Job sources behind one interface: the demo chain, Bitcoin Core (bitcoind) and an upstream pool."""

from .base import BlockOutcome, ExtranonceLayout, JobSource, Publish, SolvedBlock, SourceHealth

__all__ = ["BlockOutcome", "ExtranonceLayout", "JobSource", "Publish", "SolvedBlock", "SourceHealth"]
