"""Password hashes and the web settings that hold them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kernel.settings import Settings
from web.passwords import WebUsers, hash_password, verify_password


def test_hash_password_right_password_verifies() -> None:
    encoded = hash_password("correct horse")
    assert encoded.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", encoded)


def test_hash_password_wrong_password_fails() -> None:
    assert not verify_password("wrong horse", hash_password("correct horse"))


def test_hash_password_same_password_gets_different_salts() -> None:
    assert hash_password("correct horse") != hash_password("correct horse")


@pytest.mark.parametrize("encoded", ["", "plain", "scrypt$x$8$1$AA==$AA==", "bcrypt$1$2$3$AA==$AA==",
                                     "scrypt$3$8$1$AA==$AA==", "scrypt$1048576$64$1$AA==$AA=="])
def test_verify_password_malformed_hash_fails(encoded: str) -> None:
    assert not verify_password("anything", encoded)


def test_web_users_unknown_name_fails() -> None:
    users = WebUsers.parse([f"admin:{hash_password('correct horse')}"])
    assert users.check("admin", "correct horse")
    assert not users.check("root", "correct horse")
    assert "admin" in users and "root" not in users


def test_settings_web_users_hash_entry_accepted(tmp_path: Path) -> None:
    entry = f"admin:{hash_password('correct horse')}"
    settings = Settings(home=tmp_path, web_users=entry, web_session_secret="s3cret")
    assert settings.web_users == [entry]
    redacted = settings.redacted()
    assert redacted["web_users"] == ["admin:***"] and redacted["web_session_secret"] == "***"
    assert "scrypt" not in str(redacted)


@pytest.mark.parametrize("entry", ["admin:password", "admin", "ad min:scrypt$1$1$1$AA==$AA=="])
def test_settings_web_users_plain_password_refused(tmp_path: Path, entry: str) -> None:
    with pytest.raises(ValidationError, match="web-user"):
        Settings(home=tmp_path, web_users=entry)


def test_settings_web_users_same_name_twice_refused(tmp_path: Path) -> None:
    one = f"admin:{hash_password('correct horse')}"
    with pytest.raises(ValidationError, match="twice"):
        Settings(home=tmp_path, web_users=[one, one])


def test_settings_http_port_default_is_off(tmp_path: Path) -> None:
    assert Settings(home=tmp_path).http_port is None
    with pytest.raises(ValidationError):
        Settings(home=tmp_path, http_port=70000)
