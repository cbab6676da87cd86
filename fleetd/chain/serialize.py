"""Bitcoin wire serialization: compact sizes, transactions, blocks, blk*.dat files.

Parsing never trusts a length or count from the input: each is checked against the
bytes actually left before anything is read or allocated, and every problem is a
ValueError naming the field and its byte offset.
"""

from __future__ import annotations

import bz2
import struct
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from .byteorder import HASH_SIZE, HEADER_SIZE, pack_header, unpack_header
from .hashes import sha256d

MAX_SIZE = 0x02000000  # Bitcoin Core serialize.h: largest compact size it will read
SEGWIT_MARKER = 0x00  # BIP144
SEGWIT_FLAG = 0x01  # BIP144
MAINNET_MAGIC = bytes.fromhex("f9beb4d9")
COINBASE_PREV_TXID = bytes(HASH_SIZE)
COINBASE_PREV_INDEX = 0xFFFFFFFF

# Smallest possible encodings; a count times these must fit in what is left.
_MIN_TX_SIZE = 10  # version, two empty counts, locktime
_MIN_INPUT_SIZE = 41  # prevout 36, empty script 1, sequence 4
_MIN_OUTPUT_SIZE = 9  # value 8, empty script 1
_MIN_WITNESS_ITEM_SIZE = 1  # an empty item is its length byte

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_FRAME = struct.Struct("<4sI")


def write_compact_size(n: int) -> bytes:
    """The CompactSize encoding of n (1, 3, 5 or 9 bytes)."""
    if not 0 <= n <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"compact size out of range: {n}")
    if n < 0xFD:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + _U16.pack(n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + _U32.pack(n)
    return b"\xff" + _U64.pack(n)


def read_compact_size(data: bytes, offset: int = 0) -> tuple[int, int]:
    """(value, offset after it) of the CompactSize at offset; non-canonical or > MAX_SIZE is a ValueError."""
    reader = _Reader(data, offset)
    return reader.compact_size("compact size"), reader.pos


@dataclass(frozen=True, slots=True)
class TxIn:
    prev_txid: bytes  # internal byte order
    prev_index: int
    script_sig: bytes
    sequence: int


@dataclass(frozen=True, slots=True)
class TxOut:
    value: int  # satoshis
    script_pubkey: bytes


@dataclass(frozen=True, slots=True)
class Transaction:
    """A transaction; ``witnesses`` is empty or holds one stack per input (BIP144)."""

    version: int
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    locktime: int
    witnesses: tuple[tuple[bytes, ...], ...] = ()

    @property
    def has_witness(self) -> bool:
        return any(self.witnesses)

    @property
    def is_coinbase(self) -> bool:
        return (
            len(self.inputs) == 1
            and self.inputs[0].prev_txid == COINBASE_PREV_TXID
            and self.inputs[0].prev_index == COINBASE_PREV_INDEX
        )

    @property
    def txid(self) -> bytes:
        """sha256d of the serialization without witness, internal byte order."""
        return sha256d(self.serialize(with_witness=False))

    @property
    def wtxid(self) -> bytes:
        """sha256d of the full serialization (equals txid without witness data)."""
        return sha256d(self.serialize(with_witness=True))

    def serialize(self, with_witness: bool = True) -> bytes:
        """Wire bytes; BIP144 extended format only when asked for and some witness is non-empty."""
        segwit = with_witness and self.has_witness
        if segwit and len(self.witnesses) != len(self.inputs):
            raise ValueError(f"{len(self.witnesses)} witness stacks for {len(self.inputs)} inputs")
        try:
            parts = [_U32.pack(self.version)]
            if segwit:
                parts.append(bytes((SEGWIT_MARKER, SEGWIT_FLAG)))
            parts.append(write_compact_size(len(self.inputs)))
            for txin in self.inputs:
                if len(txin.prev_txid) != HASH_SIZE:
                    raise ValueError(f"prev_txid must be {HASH_SIZE} bytes, got {len(txin.prev_txid)}")
                parts += (txin.prev_txid, _U32.pack(txin.prev_index))
                parts += (_var_bytes(txin.script_sig), _U32.pack(txin.sequence))
            parts.append(write_compact_size(len(self.outputs)))
            for txout in self.outputs:
                parts += (_I64.pack(txout.value), _var_bytes(txout.script_pubkey))
            if segwit:
                for stack in self.witnesses:
                    parts.append(write_compact_size(len(stack)))
                    parts += map(_var_bytes, stack)
            parts.append(_U32.pack(self.locktime))
        except struct.error as exc:
            raise ValueError(f"transaction field out of range: {exc}") from None
        return b"".join(parts)


@dataclass(frozen=True, slots=True)
class Block:
    """A block: parsed header fields (hashes in internal byte order) and its transactions."""

    version: int
    prevhash: bytes
    merkle_root: bytes
    ntime: int
    nbits: int
    nonce: int
    transactions: tuple[Transaction, ...] = field(repr=False)

    @property
    def header(self) -> bytes:
        """The 80 header bytes."""
        return pack_header(self.version, self.prevhash, self.merkle_root, self.ntime, self.nbits, self.nonce)

    @property
    def hash(self) -> bytes:
        """sha256d of the header, internal byte order."""
        return sha256d(self.header)

    @property
    def txids(self) -> tuple[bytes, ...]:
        return tuple(tx.txid for tx in self.transactions)

    def serialize(self) -> bytes:
        txs = (tx.serialize(with_witness=True) for tx in self.transactions)
        return b"".join((self.header, write_compact_size(len(self.transactions)), *txs))


def parse_transaction(raw: bytes) -> Transaction:
    """One transaction occupying all of raw."""
    reader = _Reader(raw)
    tx = _read_transaction(reader, "transaction")
    reader.expect_end("transaction")
    return tx


def parse_block(raw: bytes) -> Block:
    """One serialized block occupying all of raw."""
    reader = _Reader(raw)
    version, prevhash, merkle_root, ntime, nbits, nonce = unpack_header(reader.take(HEADER_SIZE, "block header"))
    count = reader.count(_MIN_TX_SIZE, "transaction")
    if count == 0:
        raise ValueError("block has no transactions (a block needs at least its coinbase)")
    txs = tuple(_read_transaction(reader, f"transaction {i}") for i in range(count))
    reader.expect_end("block")
    return Block(version, prevhash, merkle_root, ntime, nbits, nonce, txs)


def read_blocks(path: str | PathLike[str], magic: bytes = MAINNET_MAGIC) -> list[Block]:
    """Every block of a Bitcoin Core blk*.dat file (magic, 4-byte LE length, block), bz2 if named *.bz2.

    A zero-filled tail is accepted because Bitcoin Core preallocates blk files.
    """
    path = Path(path)
    data = path.read_bytes()
    if path.name.endswith(".bz2"):
        try:
            data = bz2.decompress(data)
        except (OSError, EOFError, ValueError) as exc:
            raise ValueError(f"{path}: not a valid bz2 stream: {exc}") from None
    blocks = []
    pos = 0
    while pos < len(data):
        where = f"{path}: block {len(blocks)} at byte {pos}"
        if len(data) - pos < _FRAME.size:
            if not data[pos:].strip(b"\0"):
                break
            raise ValueError(f"{where}: truncated frame header ({len(data) - pos} of {_FRAME.size} bytes)")
        got_magic, length = _FRAME.unpack_from(data, pos)
        if got_magic != magic:
            if not data[pos:].strip(b"\0"):
                break
            raise ValueError(f"{where}: bad magic {got_magic.hex()}, expected {magic.hex()}")
        pos += _FRAME.size
        if length > len(data) - pos:
            raise ValueError(f"{where}: length {length} runs past the end ({len(data) - pos} bytes left)")
        try:
            blocks.append(parse_block(data[pos : pos + length]))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        pos += length
    return blocks


def _var_bytes(data: bytes) -> bytes:
    return write_compact_size(len(data)) + data


def _read_transaction(reader: _Reader, where: str) -> Transaction:
    version = reader.u32(f"{where} version")
    segwit = reader.peek(f"{where} input count") == SEGWIT_MARKER
    if segwit:
        reader.pos += 1
        flag = reader.take(1, f"{where} segwit flag")[0]
        if flag != SEGWIT_FLAG:
            raise ValueError(f"{where}: segwit flag at byte {reader.pos - 1} is {flag:#04x}, expected 0x01 (BIP144)")
    inputs = tuple(
        _read_input(reader, f"{where} input {i}") for i in range(reader.count(_MIN_INPUT_SIZE, f"{where} input"))
    )
    outputs = tuple(
        TxOut(reader.i64(f"{where} output {i} value"), reader.var_bytes(f"{where} output {i} script_pubkey"))
        for i in range(reader.count(_MIN_OUTPUT_SIZE, f"{where} output"))
    )
    witnesses: tuple[tuple[bytes, ...], ...] = ()
    if segwit:
        witnesses = tuple(_read_witness(reader, f"{where} input {i} witness") for i in range(len(inputs)))
        if not any(witnesses):
            raise ValueError(f"{where}: segwit marker but every witness is empty (BIP144 forbids this)")
    return Transaction(version, inputs, outputs, reader.u32(f"{where} locktime"), witnesses)


def _read_input(reader: _Reader, where: str) -> TxIn:
    return TxIn(
        reader.take(HASH_SIZE, f"{where} prev_txid"),
        reader.u32(f"{where} prev_index"),
        reader.var_bytes(f"{where} script_sig"),
        reader.u32(f"{where} sequence"),
    )


def _read_witness(reader: _Reader, where: str) -> tuple[bytes, ...]:
    count = reader.count(_MIN_WITNESS_ITEM_SIZE, f"{where} item")
    return tuple(reader.var_bytes(f"{where} item {k}") for k in range(count))


class _Reader:
    """A cursor over bytes whose every read is bounds-checked."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"expected bytes, got {type(data).__name__}")
        self.data = bytes(data)
        if not 0 <= pos <= len(self.data):
            raise ValueError(f"offset {pos} outside the {len(self.data)} bytes given")
        self.pos = pos

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.left():
            raise ValueError(f"truncated {what} at byte {self.pos}: need {n} bytes, {self.left()} left")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def peek(self, what: str) -> int:
        if not self.left():
            raise ValueError(f"truncated {what} at byte {self.pos}: need 1 byte, 0 left")
        return self.data[self.pos]

    def u32(self, what: str) -> int:
        return _U32.unpack(self.take(4, what))[0]

    def i64(self, what: str) -> int:
        return _I64.unpack(self.take(8, what))[0]

    def compact_size(self, what: str) -> int:
        start = self.pos
        first = self.take(1, what)[0]
        if first < 0xFD:
            return first
        width, minimum = {0xFD: (2, 0xFD), 0xFE: (4, 0x10000), 0xFF: (8, 0x100000000)}[first]
        value = int.from_bytes(self.take(width, what), "little")
        if value < minimum:
            raise ValueError(f"non-canonical {what} at byte {start}: {value} encoded in {1 + width} bytes")
        if value > MAX_SIZE:
            raise ValueError(f"{what} at byte {start} is {value}, above the limit {MAX_SIZE}")
        return value

    def count(self, min_item_size: int, what: str) -> int:
        start = self.pos
        n = self.compact_size(f"{what} count")
        if n * min_item_size > self.left():
            raise ValueError(f"{what} count {n} at byte {start} cannot fit in the {self.left()} bytes left")
        return n

    def var_bytes(self, what: str) -> bytes:
        return self.take(self.compact_size(f"{what} length"), what)

    def expect_end(self, what: str) -> None:
        if self.left():
            raise ValueError(f"{self.left()} trailing bytes after the {what} at byte {self.pos}")
