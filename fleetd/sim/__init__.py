"""Virtual rigs: a real Stratum v1 miner client and the benchmark's load generator."""
