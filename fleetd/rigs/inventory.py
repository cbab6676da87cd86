"""The optional inventory file: which rigs the site has, where, and what they should do.

TOML, one table per rig::

    [[rig]]
    ip = "10.0.1.11"
    name = "acct.rack1-01"        # the worker name it mines as
    model = "Antminer S19 XP"     # a catalogue model: nominal figures default to its nameplate
    nominal_ths = 138             # optional override, TH/s
    nominal_watts = 3010          # optional override, W

CSV, with a header row naming the same columns (``#`` lines and blank lines skipped)::

    ip,name,model,nominal_ths,nominal_watts
    10.0.1.11,acct.rack1-01,Antminer S19 XP,,
    10.0.1.12,acct.rack1-02,Custom Hydro X,250,5400

A model the catalogue does not know, or no model at all, needs both nominal figures (no
model and no figures is fine too: pyasic names the model once the rig is polled). Every
error names the file, the line and the field.
"""

from __future__ import annotations

import csv
import ipaddress
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetd.rigs.models import TERA, find_model

FIELDS = ("ip", "name", "model", "nominal_ths", "nominal_watts")
REQUIRED = ("ip", "name")
_TOML_RIG_HEADER = re.compile(r"^\s*\[\[\s*rig\s*\]\]")
_BAD_NAME = re.compile(r"[\s\x00-\x1f\x7f]")


class InventoryError(ValueError):
    """A bad inventory file; the message names where and what."""


@dataclass(frozen=True, slots=True)
class InventoryEntry:
    ip: str
    name: str  # worker name
    model: str | None  # the catalogue's name when known, else as written
    nominal_hashrate: float | None  # H/s, from the file or the catalogue
    nominal_watts: float | None
    line: int  # where it was written, for messages

    @property
    def nominal_ths(self) -> float | None:
        return None if self.nominal_hashrate is None else self.nominal_hashrate / TERA


def load(path: str | Path) -> tuple[InventoryEntry, ...]:
    """Parse an inventory file, chosen by its suffix (.toml or .csv)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read the inventory: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InventoryError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    match path.suffix.lower():
        case ".toml":
            return parse_toml(text, source=str(path))
        case ".csv":
            return parse_csv(text, source=str(path))
    raise InventoryError(f"{path}: unknown inventory format {path.suffix!r}; use a .toml or .csv file")


def parse_toml(text: str, *, source: str = "<inventory>") -> tuple[InventoryEntry, ...]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"rig"})
    if unknown:
        raise InventoryError(f"{source}: unknown top-level key {unknown[0]!r}; rigs go in [[rig]] tables")
    rigs = document.get("rig", [])
    if not isinstance(rigs, list) or not all(isinstance(r, dict) for r in rigs):
        raise InventoryError(f"{source}: 'rig' must be an array of tables, written [[rig]]")
    # tomllib keeps no positions: the n-th [[rig]] header line is the n-th table
    headers = [n for n, line in enumerate(text.splitlines(), start=1) if _TOML_RIG_HEADER.match(line)]
    lines = headers if len(headers) == len(rigs) else [0] * len(rigs)
    entries = []
    for index, (table, line) in enumerate(zip(rigs, lines, strict=True), start=1):
        where = f"{source}:{line}: rig {index}" if line else f"{source}: rig {index}"
        unknown = sorted(set(table) - set(FIELDS))
        if unknown:
            raise InventoryError(f"{where}: unknown field {unknown[0]!r}; fields are {', '.join(FIELDS)}")
        entries.append(_entry(table, where, line))
    return _unique(entries, source)


def parse_csv(text: str, *, source: str = "<inventory>") -> tuple[InventoryEntry, ...]:
    reader = csv.reader(text.splitlines())
    header: list[str] | None = None
    entries = []
    for row in reader:
        line = reader.line_num
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in row]
            unknown = [c for c in header if c not in FIELDS]
            if unknown:
                raise InventoryError(f"{source}:{line}: unknown column {unknown[0]!r}; columns are {', '.join(FIELDS)}")
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise InventoryError(f"{source}:{line}: the header has no {missing[0]!r} column")
            if len(set(header)) != len(header):
                raise InventoryError(f"{source}:{line}: a column is named twice in the header")
            continue
        where = f"{source}:{line}"
        if len(row) > len(header):
            raise InventoryError(f"{where}: {len(row)} cells but the header names {len(header)} columns")
        cells = {name: cell.strip() for name, cell in zip(header, row)}
        entries.append(_entry({k: v for k, v in cells.items() if v != ""}, where, line))
    if header is None:
        raise InventoryError(f"{source}: empty inventory; the first row must name the columns ({', '.join(FIELDS)})")
    return _unique(entries, source)


def _entry(fields: Mapping[str, Any], where: str, line: int) -> InventoryEntry:
    for key in REQUIRED:
        if key not in fields:
            raise InventoryError(f"{where}: field {key!r} is missing")
    ip = _ip(fields["ip"], where)
    name = fields["name"]
    if not isinstance(name, str) or not name or _BAD_NAME.search(name):
        raise InventoryError(f"{where}: field 'name' must be a worker name without spaces, got {name!r}")
    written_model = fields.get("model")
    if written_model is not None and (not isinstance(written_model, str) or not written_model.strip()):
        raise InventoryError(f"{where}: field 'model' must be a model name, got {written_model!r}")
    ths = _positive(fields, "nominal_ths", where)
    watts = _positive(fields, "nominal_watts", where)
    known = find_model(written_model) if written_model else None
    if known is not None:
        model = known.name
        hashrate = ths * TERA if ths is not None else known.nominal_hashrate
        watts = watts if watts is not None else known.nominal_watts
    else:
        model = written_model.strip() if written_model else None
        if (ths is None) != (watts is None) or (written_model and ths is None):
            what = f"model {written_model!r} is not in the catalogue" if written_model else "no model is given"
            missing = "nominal_ths" if ths is None else "nominal_watts"
            raise InventoryError(f"{where}: field {missing!r} is missing: {what}, so give nominal_ths and nominal_watts")
        hashrate = ths * TERA if ths is not None else None
    return InventoryEntry(ip=ip, name=name, model=model, nominal_hashrate=hashrate, nominal_watts=watts, line=line)


def _ip(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InventoryError(f"{where}: field 'ip' must be an IP address in quotes, got {value!r}")
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise InventoryError(f"{where}: field 'ip' is not an IP address: {value!r}") from None


def _positive(fields: Mapping[str, Any], key: str, where: str) -> float | None:
    value = fields.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        number = math.nan  # TOML true/false is no figure
    elif isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(str(value))
        except ValueError:
            number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise InventoryError(f"{where}: field {key!r} must be a positive number, got {value!r}")
    return number


def _unique(entries: list[InventoryEntry], source: str) -> tuple[InventoryEntry, ...]:
    seen_ip: dict[str, InventoryEntry] = {}
    seen_name: dict[str, InventoryEntry] = {}
    for entry in entries:
        for seen, key, label in ((seen_ip, entry.ip, "ip"), (seen_name, entry.name, "name")):
            first = seen.setdefault(key, entry)
            if first is not entry:
                raise InventoryError(
                    f"{source}:{entry.line}: field {label!r}: {key!r} is already used at line {first.line}"
                )
    return tuple(entries)
