"""The Whatsminer write access: MD5-crypt and AES exactly as pyasic computes them."""

from __future__ import annotations

import base64
import json
import warnings

import pytest

from fleetd.sim.firmware.btminer_auth import TokenIssuer, DecodeError, decrypt, encrypt, md5_crypt
from fake_clock import FakeClock

with warnings.catch_warnings():  # passlib imports the deprecated crypt module
    warnings.simplefilter("ignore", DeprecationWarning)
    from passlib.handlers.md5_crypt import md5_crypt as passlib_md5_crypt
    from pyasic.rpc.btminer import TokenData, create_privileged_cmd, parse_btminer_priviledge_data


@pytest.mark.parametrize("password", ["admin", "", "x" * 16, "a much longer password than sixteen", "pässwort"])
@pytest.mark.parametrize("salt", ["BQ5hoXV9", "ab", "./Zz09"])
def test_md5_crypt_matches_the_one_pyasic_uses(password, salt):
    assert md5_crypt(password, salt) == passlib_md5_crypt.using(salt=salt).hash(password).split("$")[3]


def test_commands_pyasic_encrypts_decrypt_and_replies_decrypt_in_pyasic():
    key = md5_crypt("admin", "BQ5hoXV9")
    token = TokenData(host_sign="sign", host_passwd_md5=key)
    request = json.loads(create_privileged_cmd(token, {"cmd": "power_off", "respbefore": "true"}))
    assert request["enc"] == 1
    assert decrypt(key, request["data"]) == {"cmd": "power_off", "respbefore": "true", "token": "sign"}
    reply = {"STATUS": "S", "Code": 131, "Msg": "API command OK"}
    assert parse_btminer_priviledge_data(token, {"enc": encrypt(key, reply)}) == reply


def test_a_command_under_another_key_or_not_base64_is_refused_with_the_firmware_codes():
    data = json.loads(create_privileged_cmd(TokenData(host_sign="s", host_passwd_md5="wrong"), {"cmd": "x"}))["data"]
    with pytest.raises(DecodeError, match="enc json load err") as wrong_key:
        decrypt(md5_crypt("admin", "salt"), data)
    assert wrong_key.value.code == 23
    with pytest.raises(DecodeError) as not_base64:
        decrypt("key", "*not base64*")
    assert not_base64.value.code == 137
    with pytest.raises(DecodeError) as short:
        decrypt("key", base64.b64encode(b"12345").decode())
    assert short.value.code == 23


def test_a_token_is_good_for_30_minutes_for_the_client_it_was_issued_to():
    clock = FakeClock()
    issuer = TokenIssuer(clock, salt="saltsalt")
    token = issuer.issue("127.0.0.1", "admin")
    key = issuer.key("admin")
    assert token["salt"] == "saltsalt" and token["time"] == "0000"  # 1_700_000_000 ends in 0000
    sign = md5_crypt(key + token["time"], token["newsalt"])
    assert issuer.valid("127.0.0.1", sign) and not issuer.valid("127.0.0.2", sign)
    assert not issuer.valid("127.0.0.1", None)
    clock.tick(30 * 60)
    assert not issuer.valid("127.0.0.1", sign)
