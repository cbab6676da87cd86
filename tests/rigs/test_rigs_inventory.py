"""The inventory file: TOML and CSV, good files and each kind of bad row."""

from __future__ import annotations

import pytest

from fleetd.rigs.inventory import InventoryEntry, InventoryError, load, parse_csv, parse_toml
from fleetd.rigs.models import ANTMINER_S21, BITAXE_GAMMA

GOOD_TOML = """\
# site A, rack 1

[[rig]]
ip = "10.0.1.11"
name = "acct.r1-01"
model = "antminer-s21"            # any spelling the catalogue knows

[[rig]]
ip = "10.0.1.12"
name = "acct.r1-02"
model = "S19 XP"
nominal_ths = 138.5               # this unit tested a little low
nominal_watts = 2990

[[rig]]
ip = "10.0.1.13"
name = "acct.r1-03"
model = "Hydro Prototype 9"       # unknown: figures required
nominal_ths = 250
nominal_watts = 5400

[[rig]]
ip = "fd00::14"
name = "acct.r1-04"               # no model: pyasic will say
"""

GOOD_CSV = """\
# exported from the site spreadsheet
IP, Name, Model, Nominal_THs, Nominal_Watts

10.0.2.1,acct.r2-01,Bitaxe,,
10.0.2.2,acct.r2-02,Custom Hydro X,250,5400
10.0.2.3,acct.r2-03,,,
"""


def test_a_good_toml_file():
    entries = parse_toml(GOOD_TOML, source="rigs.toml")
    assert [e.ip for e in entries] == ["10.0.1.11", "10.0.1.12", "10.0.1.13", "fd00::14"]
    assert [e.line for e in entries] == [3, 8, 15, 22]
    s21, s19, hydro, bare = entries
    assert s21 == InventoryEntry("10.0.1.11", "acct.r1-01", "Antminer S21", ANTMINER_S21.nominal_hashrate, 3500, 3)
    assert (s19.model, s19.nominal_ths, s19.nominal_watts) == ("Antminer S19 XP", 138.5, 2990)
    assert (hydro.model, hydro.nominal_hashrate, hydro.nominal_watts) == ("Hydro Prototype 9", 250e12, 5400)
    assert (bare.model, bare.nominal_hashrate, bare.nominal_watts) == (None, None, None)


def test_a_good_csv_file():
    entries = parse_csv(GOOD_CSV, source="rigs.csv")
    assert [(e.ip, e.name, e.line) for e in entries] == [
        ("10.0.2.1", "acct.r2-01", 4),
        ("10.0.2.2", "acct.r2-02", 5),
        ("10.0.2.3", "acct.r2-03", 6),
    ]
    bitaxe, hydro, bare = entries
    assert (bitaxe.model, bitaxe.nominal_hashrate, bitaxe.nominal_watts) == (
        "Bitaxe Gamma",
        BITAXE_GAMMA.nominal_hashrate,
        BITAXE_GAMMA.nominal_watts,
    )
    assert (hydro.model, hydro.nominal_ths, hydro.nominal_watts) == ("Custom Hydro X", 250, 5400)
    assert bare.model is None and bare.nominal_hashrate is None


def test_columns_may_be_few_and_in_any_order():
    entries = parse_csv("name,ip\nacct.x,10.0.0.1\n")
    assert [(e.ip, e.name, e.model) for e in entries] == [("10.0.0.1", "acct.x", None)]


def test_load_chooses_by_suffix(tmp_path):
    (tmp_path / "rigs.toml").write_text(GOOD_TOML)
    (tmp_path / "rigs.CSV").write_text(GOOD_CSV)
    assert len(load(tmp_path / "rigs.toml")) == 4
    assert len(load(tmp_path / "rigs.CSV")) == 3
    (tmp_path / "rigs.json").write_text("{}")
    with pytest.raises(InventoryError, match=r"rigs\.json: unknown inventory format '\.json'"):
        load(tmp_path / "rigs.json")
    with pytest.raises(InventoryError, match=r"missing\.toml: cannot read the inventory"):
        load(tmp_path / "missing.toml")


CSV_HEADER = "ip,name,model,nominal_ths,nominal_watts\n"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (",acct.a,S21,,", r"rigs\.csv:3: field 'ip' is missing"),
        ("10.0.0.300,acct.a,S21,,", r"rigs\.csv:3: field 'ip' is not an IP address: '10\.0\.0\.300'"),
        ("rig-a.local,acct.a,S21,,", r"rigs\.csv:3: field 'ip' is not an IP address"),
        ("10.0.0.9,,S21,,", r"rigs\.csv:3: field 'name' is missing"),
        ("10.0.0.9,acct a,S21,,", r"rigs\.csv:3: field 'name' must be a worker name without spaces"),
        ("10.0.0.9,acct.a,Mystery 9000,,", r"rigs\.csv:3: field 'nominal_ths' is missing: model 'Mystery 9000' is not"),
        ("10.0.0.9,acct.a,Mystery 9000,100,", r"rigs\.csv:3: field 'nominal_watts' is missing: model 'Mystery 9000'"),
        ("10.0.0.9,acct.a,,100,", r"rigs\.csv:3: field 'nominal_watts' is missing: no model is given"),
        ("10.0.0.9,acct.a,,,3000", r"rigs\.csv:3: field 'nominal_ths' is missing: no model is given"),
        ("10.0.0.9,acct.a,S21,-5,", r"rigs\.csv:3: field 'nominal_ths' must be a positive number, got '-5'"),
        ("10.0.0.9,acct.a,S21,0,", r"rigs\.csv:3: field 'nominal_ths' must be a positive number"),
        ("10.0.0.9,acct.a,S21,200 TH/s,", r"rigs\.csv:3: field 'nominal_ths' must be a positive number, got '200 TH/s'"),
        ("10.0.0.9,acct.a,S21,,nan", r"rigs\.csv:3: field 'nominal_watts' must be a positive number, got 'nan'"),
        ("10.0.0.9,acct.a,S21,,inf", r"rigs\.csv:3: field 'nominal_watts' must be a positive number"),
        ("10.0.0.9,acct.a,S21,,,extra", r"rigs\.csv:3: 6 cells but the header names 5 columns"),
        ("10.0.0.1,acct.b,S21,,", r"rigs\.csv:3: field 'ip': '10\.0\.0\.1' is already used at line 2"),
        ("10.0.0.9,acct.a1,S21,,", r"rigs\.csv:3: field 'name': 'acct\.a1' is already used at line 2"),
    ],
)
def test_each_kind_of_bad_csv_row_is_named(row, message):
    text = CSV_HEADER + "10.0.0.1,acct.a1,S21,,\n" + row + "\n"
    with pytest.raises(InventoryError, match=message):
        parse_csv(text, source="rigs.csv")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"rigs\.csv: empty inventory; the first row must name the columns"),
        ("# only a comment\n", r"rigs\.csv: empty inventory"),
        ("ip,name,watts\n", r"rigs\.csv:1: unknown column 'watts'; columns are ip, name, model"),
        ("ip,model\n", r"rigs\.csv:1: the header has no 'name' column"),
        ("ip,name,ip\n", r"rigs\.csv:1: a column is named twice"),
    ],
)
def test_bad_csv_headers_are_named(text, message):
    with pytest.raises(InventoryError, match=message):
        parse_csv(text, source="rigs.csv")


def toml_rig(body: str) -> str:
    return '[[rig]]\nip = "10.0.0.1"\nname = "acct.a1"\nmodel = "S21"\n\n[[rig]]\n' + body


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (toml_rig('name = "acct.b"\n'), r"rigs\.toml:6: rig 2: field 'ip' is missing"),
        (toml_rig('ip = 10\nname = "acct.b"\n'), r"rigs\.toml:6: rig 2: field 'ip' must be an IP address in quotes"),
        (toml_rig('ip = "10.0.0.2"\nname = 7\n'), r"rigs\.toml:6: rig 2: field 'name' must be a worker name"),
        (toml_rig('ip = "10.0.0.2"\nname = "acct.b"\nmodel = "Nope"\n'), r"rigs\.toml:6: rig 2: field 'nominal_ths' is missing"),
        (toml_rig('ip = "10.0.0.2"\nname = "acct.b"\nmodel = ""\n'), r"rigs\.toml:6: rig 2: field 'model' must be a model name"),
        (
            toml_rig('ip = "10.0.0.2"\nname = "acct.b"\nmodel = "S21"\nnominal_ths = "lots"\n'),
            r"rigs\.toml:6: rig 2: field 'nominal_ths' must be a positive number, got 'lots'",
        ),
        (
            toml_rig('ip = "10.0.0.2"\nname = "acct.b"\nmodel = "S21"\nnominal_watts = true\n'),
            r"rigs\.toml:6: rig 2: field 'nominal_watts' must be a positive number, got True",
        ),
        (toml_rig('ip = "10.0.0.2"\nname = "acct.b"\nwatts = 3\n'), r"rigs\.toml:6: rig 2: unknown field 'watts'"),
        (toml_rig('ip = "10.0.0.1"\nname = "acct.b"\n'), r"rigs\.toml:6: field 'ip': '10\.0\.0\.1' is already used at line 1"),
        (toml_rig('ip = "10.0.0.2"\nname = "acct.b\n'), r"rigs\.toml: not valid TOML: .*line 8"),
        ('[rig]\nip = "10.0.0.1"\n', r"rigs\.toml: 'rig' must be an array of tables, written \[\[rig\]\]"),
        ('[[rigs]]\nip = "10.0.0.1"\n', r"rigs\.toml: unknown top-level key 'rigs'"),
    ],
)
def test_each_kind_of_bad_toml_rig_is_named(text, message):
    with pytest.raises(InventoryError, match=message):
        parse_toml(text, source="rigs.toml")


def test_an_empty_toml_inventory_has_no_rigs():
    assert parse_toml("# nothing yet\n") == ()


def test_inventory_errors_are_value_errors():
    assert issubclass(InventoryError, ValueError)
