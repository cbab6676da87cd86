"""pyasic's MinerData to a RigReading: units, missing figures, errors, the worker."""

from __future__ import annotations

import pytest

from fleetd.rigs.poller import PollError, hashes_per_second, load_pyasic, reading_from

load_pyasic()  # quietly, before the pyasic submodules below
from pyasic.data import Fan, HashBoard, MinerData  # noqa: E402
from pyasic.data.device import DeviceInfo  # noqa: E402
from pyasic.data.error_codes import WhatsminerError, X19Error  # noqa: E402
from pyasic.data.pools import PoolMetrics  # noqa: E402
from pyasic.device.algorithm import MinerAlgo  # noqa: E402
from pyasic.device.firmware import MinerFirmware  # noqa: E402
from pyasic.device.makes import MinerMake  # noqa: E402
from pyasic.device.models import WhatsminerModels  # noqa: E402

SHA256 = MinerAlgo.SHA256


def rate(value: float, unit) -> object:
    return SHA256.hashrate(rate=value, unit=unit)


def miner_data(**fields) -> MinerData:
    info = DeviceInfo(make=MinerMake.WHATSMINER, model=WhatsminerModels.M60SVK30, firmware=MinerFirmware.STOCK, algo=SHA256)
    return MinerData(ip="10.0.0.7", device_info=info, **fields)


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [(186.0, "TH", 186e12), (1200.5, "GH", 1.2005e12), (0.5, "PH", 5e14), (42.0, "H", 42.0)],
)
def test_hash_rate_objects_become_hashes_per_second(value, unit, expected):
    assert hashes_per_second(rate(value, getattr(SHA256.unit, unit))) == pytest.approx(expected)


def test_bare_numbers_are_terahashes_and_none_stays_none():
    assert hashes_per_second(140) == 140e12
    assert hashes_per_second(None) is None


def test_a_full_reading():
    boards = [
        HashBoard(slot=0, hashrate=rate(62, SHA256.unit.TH), temp=60.0, chip_temp=70.0),
        HashBoard(slot=1, hashrate=rate(62_000, SHA256.unit.GH), temp=61.5, chip_temp=71.0),
        HashBoard(slot=2, hashrate=rate(62, SHA256.unit.TH), temp=0, chip_temp=None),  # sensors missing
    ]
    data = miner_data(
        hashboards=boards,
        env_temp=25.0,
        wattage=3441,
        fans=[Fan(speed=5264), Fan(speed=None), Fan(speed=5304)],
        fan_psu=3500,
        uptime=3600,
        errors=[WhatsminerError(error_code=530), X19Error(error_message="PSU voltage out of range")],
        pools=[
            PoolMetrics(url=None, user="backup.rig", active=False),
            PoolMetrics(url=None, user="acct.rig7", active=True),
        ],
    )
    reading = reading_from(data, ip="10.0.0.7", time=1234.5)
    assert reading.ip == "10.0.0.7" and reading.time == 1234.5
    assert (reading.make, reading.model, reading.firmware) == ("WhatsMiner", "M60S VK30", "Stock")
    assert reading.hashrate == pytest.approx(186e12)  # summed over the boards, in H/s
    assert reading.watts == 3441.0
    assert reading.temperatures == {"board0": 60.0, "chip0": 70.0, "board1": 61.5, "chip1": 71.0, "inlet": 25.0}
    assert reading.fans == {"0": 5264.0, "2": 5304.0, "psu": 3500.0}
    assert reading.uptime == 3600.0
    assert reading.errors[0].startswith("530: ") and reading.errors[1] == "PSU voltage out of range"
    assert reading.worker == "acct.rig7"  # the active pool's user


def test_figures_the_firmware_lacks_stay_unset():
    data = miner_data(raw_hashrate=rate(140, SHA256.unit.TH), wattage=0)  # no boards: the summary's rate
    reading = reading_from(data, ip="10.0.0.7", time=1.0)
    assert reading.hashrate == pytest.approx(140e12)
    assert reading.watts is None  # 0 W means "not reported", never a rig drawing nothing
    assert reading.temperatures == {} and reading.fans == {}
    assert reading.uptime is None and reading.errors == () and reading.worker is None


def test_errors_given_replace_the_data_s_own():
    data = miner_data(raw_hashrate=rate(1, SHA256.unit.TH), errors=[X19Error(error_message="new")])
    assert reading_from(data, ip="x", time=0, errors=("carried",)).errors == ("carried",)


def test_an_answer_without_a_hash_rate_is_a_failed_poll():
    # what pyasic returns when every connection was refused: an empty MinerData
    with pytest.raises(PollError, match="no hash rate"):
        reading_from(miner_data(), ip="10.0.0.7", time=0)


def test_importing_pyasic_leaves_logging_alone():
    import logging
    import subprocess
    import sys

    code = (
        "import logging; root = logging.getLogger(); root.setLevel(logging.DEBUG); "
        "from fleetd.rigs.poller import load_pyasic; load_pyasic(); "
        "print(root.level, len(root.handlers))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == [str(logging.DEBUG), "0"]


def test_a_scaled_hash_rate_is_whole_hashes_per_second_without_float_noise():
    from pyasic.device.algorithm.hashrate.unit.sha256 import SHA256Unit
    from pyasic.device.algorithm.hashrate.sha256 import SHA256HashRate

    boards = 66.66667 + 66.66667 + 66.66667  # TH/s, each board rounded as firmware reports it
    three_boards = SHA256HashRate(rate=boards, unit=SHA256Unit.TH)
    assert boards * 1e12 == 200000009999999.97  # the noise this avoids
    assert hashes_per_second(three_boards) == 200000010000000.0
    assert hashes_per_second(0.5) == 5e11
