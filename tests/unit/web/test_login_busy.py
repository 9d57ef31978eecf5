"""A try held behind password checks that do not end in time is answered 503 with
``Retry-After`` (not 429: nobody failed), over HTTP Basic and on the login form."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from db.session import make_sessionmaker
from kernel.settings import Settings
from web.app import create_app
from web.passwords import hash_password
from web.throttle import login_keys

USER, PASSWORD = "radiology", "correct horse battery"


def test_login_held_behind_checks_that_never_end_answers_503_busy(tmp_path: Path) -> None:
    config = Settings(home=tmp_path, web_users=[f"{USER}:{hash_password(PASSWORD)}"])
    app = create_app(config, make_sessionmaker(config.database_url))
    throttle = app.state.authenticator.throttle
    throttle.patience_seconds = 0.0
    keys = login_keys("192.0.2.9", USER)
    for _ in range(throttle.free_failures + 1):  # checks in flight that never end
        assert throttle.admit(keys) is None
    client = TestClient(app, client=("192.0.2.9", 50000))
    basic = client.get("/studies", auth=(USER, PASSWORD))
    assert basic.status_code == 503 and "busy" in basic.text and basic.headers["retry-after"]
    form = {"username": USER, "password": PASSWORD, "next": "/"}
    page = client.post("/login", data=form, follow_redirects=False)
    assert page.status_code == 503 and "busy" in page.text and page.headers["retry-after"]
    for _ in range(throttle.free_failures + 1):
        throttle.finished(keys, accepted=True)
    assert client.get("/studies", auth=(USER, PASSWORD)).status_code == 200
