"""Bitcoin primitives in pure Python: serialization, byte order, merkle, coinbase, header, target."""
