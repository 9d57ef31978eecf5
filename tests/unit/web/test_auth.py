"""Session cookies, HTTP Basic and the post-login target."""

from __future__ import annotations

import base64

import pytest
from itsdangerous import TimestampSigner

from web.auth import Authenticator, safe_next
from web.passwords import hash_password

PASSWORD = "correct horse"


@pytest.fixture(scope="module")
def authenticator() -> Authenticator:
    return Authenticator.build([f"admin:{hash_password(PASSWORD)}"], "test-secret", 3600)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_session_cookie_signed_names_user(authenticator: Authenticator) -> None:
    assert authenticator.cookie_user(authenticator.session_cookie("admin")) == "admin"


def test_session_cookie_tampered_is_refused(authenticator: Authenticator) -> None:
    cookie = authenticator.session_cookie("admin")
    assert authenticator.cookie_user("root" + cookie[5:]) is None
    assert authenticator.cookie_user(cookie[:-2] + "xx") is None
    assert authenticator.cookie_user("") is None


def test_session_cookie_other_secret_is_refused(authenticator: Authenticator) -> None:
    other = Authenticator.build([f"admin:{hash_password(PASSWORD)}"], "another-secret", 3600)
    assert authenticator.cookie_user(other.session_cookie("admin")) is None


def test_session_cookie_expired_is_refused(authenticator: Authenticator) -> None:
    class Past(TimestampSigner):
        def get_timestamp(self) -> int:
            return super().get_timestamp() - 7200

    old = Past("test-secret", salt="lnm-web-session").sign(b"admin").decode()
    assert authenticator.cookie_user(old) is None


def test_session_cookie_removed_user_is_refused(authenticator: Authenticator) -> None:
    cookie = authenticator.session_cookie("admin")
    without_admin = Authenticator.build([], "test-secret", 3600)
    assert without_admin.cookie_user(cookie) is None


def test_empty_secret_gets_random_key_per_build() -> None:
    one, two = Authenticator.build([], "", 60), Authenticator.build([], "", 60)
    assert two.cookie_user(one.session_cookie("admin")) is None


def test_basic_header_right_password_names_user(authenticator: Authenticator) -> None:
    assert authenticator.basic_user(_basic("admin", PASSWORD)) == "admin"


@pytest.mark.parametrize("header", [None, "", "Bearer x", "Basic !!!", "Basic " +
                                    base64.b64encode(b"admin").decode()])
def test_basic_header_malformed_is_refused(authenticator: Authenticator, header: str | None) -> None:
    assert authenticator.basic_user(header) is None


def test_basic_header_wrong_password_is_refused(authenticator: Authenticator) -> None:
    assert authenticator.basic_user(_basic("admin", "wrong")) is None


@pytest.mark.parametrize(("target", "expected"), [
    ("/studies/3", "/studies/3"), (None, "/"), ("https://evil.example/", "/"),
    ("//evil.example/", "/"), ("/\\evil", "/"), ("studies", "/"),
])
def test_safe_next_other_site_goes_home(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
