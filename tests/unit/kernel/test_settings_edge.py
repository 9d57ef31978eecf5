"""Edge security settings: calling-AE allowlist entries with host pinning, TLS destinations,
TLS file settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kernel.settings import CallingAE, Destination, Settings, settings_environment


def test_calling_ae_plain_entry_permits_any_host() -> None:
    entry = CallingAE.parse("US1")
    assert entry.permits("US1", "10.9.8.7") and entry.permits("US1 ", "::1")
    assert not entry.permits("US2", "10.9.8.7")


def test_calling_ae_pinned_entry_permits_only_its_host_or_network() -> None:
    host, network = CallingAE.parse("US1@127.0.0.1"), CallingAE.parse("LAB@10.1.2.0/24")
    assert host.permits("US1", "127.0.0.1") and not host.permits("US1", "127.0.0.2")
    assert host.permits("US1", "::ffff:127.0.0.1")  # IPv4 seen through an IPv6 socket
    assert network.permits("LAB", "10.1.2.200") and not network.permits("LAB", "10.1.3.1")
    assert not host.permits("US1", "not-an-address")
    assert (str(host), str(network)) == ("US1@127.0.0.1", "LAB@10.1.2.0/24")


def test_calling_ae_host_name_refused() -> None:
    with pytest.raises(ValueError, match="IP address or network"):
        CallingAE.parse("US1@scanner.example.org")


def test_settings_allowlist_from_environment_mixes_plain_and_pinned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LNM_CALLING_AE_ALLOWLIST", "US1@127.0.0.1, ROAMING ,US2@10.0.0.0/8")
    settings = Settings(home=tmp_path)
    assert settings.calling_ae_allowlist == ["US1@127.0.0.1", "ROAMING", "US2@10.0.0.0/8"]
    assert [rule.ae_title for rule in settings.calling_ae_rules()] == ["US1", "ROAMING", "US2"]


def test_settings_allowlist_bad_entry_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="IP address or network"):
        Settings(home=tmp_path, calling_ae_allowlist=["US1@pacs"])


def test_destination_tls_suffix_parses_and_round_trips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls, plain = Destination.parse("PACS@10.0.0.5:2762+tls"), Destination.parse("P@h:104")
    assert (tls.tls, str(tls)) == (True, "PACS@10.0.0.5:2762+tls")
    assert (plain.tls, str(plain)) == (False, "P@h:104")
    original = Settings(home=tmp_path, destinations=[tls, plain])
    for key, value in settings_environment(original).items():
        monkeypatch.setenv(key, value)
    assert Settings() == original


def test_settings_tls_certificate_without_key_is_refused(tmp_path: Path) -> None:
    certificate = tmp_path / "node.crt"
    certificate.write_text("not checked here")
    with pytest.raises(ValidationError, match="set together"):
        Settings(home=tmp_path, tls_certificate=certificate)


def test_settings_tls_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a readable file"):
        Settings(home=tmp_path, tls_ca_certificates=tmp_path / "absent.pem")


def test_settings_tls_required_client_certificate_without_ca_is_refused(tmp_path: Path) -> None:
    for name in ("node.crt", "node.key"):
        (tmp_path / name).write_text("x")
    with pytest.raises(ValidationError, match="needs tls_ca_certificates"):
        Settings(
            home=tmp_path,
            tls_certificate=tmp_path / "node.crt",
            tls_private_key=tmp_path / "node.key",
        )
    relaxed = Settings(
        home=tmp_path,
        tls_certificate=tmp_path / "node.crt",
        tls_private_key=tmp_path / "node.key",
        tls_require_client_certificate=False,
    )
    assert relaxed.tls_ca_certificates is None
