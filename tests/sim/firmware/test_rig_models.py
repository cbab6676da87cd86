"""The rig model catalogue (fleetd/rigs/models.py): lookup and the nameplate power fallback."""

from __future__ import annotations

import dataclasses
import math

import pytest

from fleetd.rigs.models import (
    ANTMINER_S19_XP,
    ANTMINER_S21,
    ANTMINER_S21_XP,
    BITAXE_GAMMA,
    CATALOGUE,
    WHATSMINER_M60S,
    FirmwareFamily,
    UnknownModelError,
    find_model,
    get_model,
    nameplate_watts,
)


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("Antminer S19 XP", ANTMINER_S19_XP),
        ("antminer s19xp", ANTMINER_S19_XP),
        ("  S19 XP ", ANTMINER_S19_XP),
        ("s19-xp", ANTMINER_S19_XP),
        ("S21", ANTMINER_S21),
        ("ANTMINER S21 XP", ANTMINER_S21_XP),
        ("s21_xp", ANTMINER_S21_XP),
        ("M60S", WHATSMINER_M60S),
        ("whatsminer m60s", WHATSMINER_M60S),
        ("M60S VK30", WHATSMINER_M60S),  # as pyasic names it
        ("M60S_VK30", WHATSMINER_M60S),  # as the firmware reports it
        ("Bitaxe", BITAXE_GAMMA),
        ("bitaxe gamma 601", BITAXE_GAMMA),
        ("Gamma", BITAXE_GAMMA),
    ],
)
def test_lookup_ignores_case_spaces_and_separators(name, model):
    assert find_model(name) is model
    assert get_model(name) is model


def test_unknown_model_says_which_ones_exist():
    assert find_model("S9") is None
    with pytest.raises(UnknownModelError, match="known models: Antminer S19 XP, .*Bitaxe Gamma"):
        get_model("Antminer S9")


def test_s21_is_not_mistaken_for_s21_xp():
    assert find_model("S21") is not find_model("S21 XP")


@pytest.mark.parametrize(
    ("model", "terahash", "watts", "joules_per_terahash"),
    [
        (ANTMINER_S19_XP, 140, 3010, 21.5),
        (ANTMINER_S21, 200, 3500, 17.5),
        (ANTMINER_S21_XP, 270, 3645, 13.5),
        (WHATSMINER_M60S, 186, 3441, 18.5),
        (BITAXE_GAMMA, 1.2, 18, 15.0),
    ],
)
def test_nameplate_figures(model, terahash, watts, joules_per_terahash):
    assert model.nominal_hashrate == pytest.approx(terahash * 1e12)
    assert model.nominal_watts == watts
    assert model.joules_per_terahash == pytest.approx(joules_per_terahash)


def test_catalogue_entries_are_frozen_and_complete():
    assert {m.firmware for m in CATALOGUE} == set(FirmwareFamily)
    assert len({m.name for m in CATALOGUE}) == len(CATALOGUE)
    assert ANTMINER_S21.chips == 3 * 108
    with pytest.raises(dataclasses.FrozenInstanceError):
        ANTMINER_S21.nominal_watts = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="positive"):
        dataclasses.replace(ANTMINER_S21, nominal_watts=0)


@pytest.mark.parametrize(
    ("measured", "watts"),
    [(140e12, 3010.0), (70e12, 1505.0), (154e12, 3311.0), (0.0, 0.0), (-5e12, 0.0), (math.nan, 0.0)],
)
def test_nameplate_watts_scale_with_measured_hashrate(measured, watts):
    assert nameplate_watts(ANTMINER_S19_XP, measured) == pytest.approx(watts)
