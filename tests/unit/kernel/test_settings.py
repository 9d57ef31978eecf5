from pathlib import Path

import pytest
from pydantic import ValidationError

from kernel.settings import Destination, Profile, Settings, load_settings, settings_environment


def test_settings_defaults_embedded_derive_sqlite_and_folder_queue(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.profile is Profile.EMBEDDED
    assert settings.database_url == f"sqlite:///{tmp_path / 'lnm.sqlite3'}"
    assert settings.broker_url == "filesystem://"
    assert settings.ae_title == "LNMNODE" and settings.port == 11112 and settings.bind_address == "127.0.0.1"


def test_settings_ae_title_longer_than_16_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="AE title"):
        Settings(home=tmp_path, ae_title="A" * 17)


def test_settings_production_without_urls_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="LNM_DATABASE_URL"):
        Settings(home=tmp_path, profile="production")


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "nonsense", "sqlite:relative.db", "postgresql://u@h/db"]
)
def test_settings_database_url_other_than_sqlite_or_postgresql_is_refused(
    tmp_path: Path, url: str
) -> None:
    with pytest.raises(ValidationError, match="database_url: SQLite .* or PostgreSQL"):
        Settings(home=tmp_path, database_url=url)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "CPU", "mps"])
def test_settings_device_other_than_cpu_or_cuda_is_refused(tmp_path: Path, device: str) -> None:
    with pytest.raises(ValidationError, match="device: cpu, cuda or cuda:N"):
        Settings(home=tmp_path, device=device)


def test_settings_task_limit_not_below_visibility_timeout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="visibility"):
        Settings(home=tmp_path, task_time_limit_seconds=4000, redis_visibility_timeout_seconds=3600)


def test_settings_environment_variables_nested_destinations_parse(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LNM_HOME", str(tmp_path))
    monkeypatch.setenv("LNM_DESTINATIONS", "PACS@127.0.0.1:4242,ARCHIVE@10.0.0.2:104")
    monkeypatch.setenv("LNM_QUIET_SECONDS", "5")
    settings = load_settings()
    assert [str(d) for d in settings.destinations] == ["PACS@127.0.0.1:4242", "ARCHIVE@10.0.0.2:104"]
    assert settings.quiet_seconds == 5


def test_settings_environment_round_trip_rebuilds_equal_settings(tmp_path: Path, monkeypatch) -> None:
    original = Settings(home=tmp_path, destinations=[Destination.parse("P@h:1")], quiet_seconds=3,
                        calling_ae_allowlist=["US1"])
    for key, value in settings_environment(original).items():
        monkeypatch.setenv(key, value)
    assert Settings() == original


def test_settings_redacted_hides_password(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, profile="production",
                        database_url="postgresql+psycopg://lnm:secret@db/lnm", broker_url="redis://:pw@r:6379/0")
    shown = settings.redacted()
    assert "secret" not in shown["database_url"] and "pw@" not in shown["broker_url"]


def test_destination_parse_malformed_is_refused() -> None:
    with pytest.raises(ValueError, match="AE@HOST:PORT"):
        Destination.parse("PACS:4242")


def test_worker_concurrency_is_the_setting_or_one_per_core_on_a_cpu_node(tmp_path: Path) -> None:
    from kernel.settings import available_cpus

    assert Settings(home=tmp_path, worker_concurrency=3).effective_concurrency() == 3
    assert Settings(home=tmp_path).effective_concurrency() == available_cpus() >= 1
