"""deploy/: the env example lists every setting; compose and systemd name real roles and settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kernel.settings import Settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
yaml = pytest.importorskip("yaml")


def test_env_example_every_setting_listed_and_generated_text_current() -> None:
    from deploy.env_example import env_example

    text = (DEPLOY / "lnm-node.env.example").read_text()
    listed = set(re.findall(r"^#? ?LNM_([A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert listed == {name.upper() for name in Settings.model_fields}, (
        "regenerate: python deploy/env_example.py > deploy/lnm-node.env.example")
    assert set(re.findall(r"^#? ?LNM_([A-Z0-9_]+)=", env_example(), flags=re.MULTILINE)) == listed


def _env_example_values() -> dict[str, str]:
    return dict(re.findall(r"^LNM_([A-Z0-9_]+)=(.*)$", (DEPLOY / "lnm-node.env.example").read_text(), re.MULTILINE))


def test_env_example_production_values_valid_settings(tmp_path: Path) -> None:
    values = {k.lower(): v for k, v in _env_example_values().items() if k != "HOME"}
    for key in ("tls_certificate", "tls_private_key", "tls_ca_certificates"):  # mounted files
        values[key] = str(tmp_path / Path(values[key]).name)
        Path(values[key]).write_text("PEM")
    compose_urls = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["x-env"]
    values["database_url"] = compose_urls["LNM_DATABASE_URL"].replace("${", "").replace("}", "")
    values["broker_url"] = compose_urls["LNM_BROKER_URL"].replace("${", "").replace("}", "")
    settings = Settings(**values, home=tmp_path)
    assert settings.profile.value == "production"
    assert settings.queue_routes["segcls"] == "gpu" and settings.default_queue == "cpu"
    assert [str(d) for d in settings.destinations] == ["ORTHANC@orthanc:4242", "stow+http://orthanc:8042/dicom-web"]


def test_compose_file_roles_gpu_runtime_and_known_settings() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"scp", "sweeper", "worker-gpu", "worker-cpu", "redis", "postgres", "orthanc"} <= set(services)
    assert services["scp"]["command"] == ["scp"] and services["sweeper"]["command"] == ["beat"]
    assert services["worker-gpu"]["command"][:3] == ["worker", "--queues", "gpu"]
    assert services["worker-cpu"]["command"][:3] == ["worker", "--queues", "cpu"]
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    fields = {name.upper() for name in Settings.model_fields}
    for name in ("scp", "sweeper", "worker-gpu", "worker-cpu"):
        service = services[name]
        assert "spool:/var/lib/lnm-node" in service["volumes"]
        for key in service["environment"]:
            assert key.startswith("LNM_") and key[4:] in fields, f"{name}: {key} is not a setting"


def test_systemd_units_run_existing_commands() -> None:
    from typer.main import get_command

    from cli.main import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} == {"lnm-scp.service", "lnm-sweeper.service", "lnm-worker@.service"}
    for unit in units:
        start = re.search(r"^ExecStart=\S+/lnm-node (\w+)", unit.read_text(), re.MULTILINE)
        assert start is not None and start.group(1) in commands, unit.name
        assert "KillSignal=SIGTERM" in unit.read_text()


def test_env_example_scp_on_every_interface_only_with_allowlist_and_tls() -> None:
    values = _env_example_values()
    assert values["BIND_ADDRESS"] == "0.0.0.0"
    assert values["CALLING_AE_ALLOWLIST"] and values["TLS_CERTIFICATE"] and values["TLS_CA_CERTIFICATES"]


def test_compose_passwords_required_redis_protected_env_file_not_overridden() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    assert "CHANGE-ME" not in text and not re.search(r"PASSWORD:-", text)
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert "POSTGRES_PASSWORD:?" in services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert "--requirepass" in " ".join(services["redis"]["command"])
    assert "REDIS_PASSWORD:?" in compose["x-env"]["LNM_BROKER_URL"].split("@")[0]
    example = (DEPLOY / "lnm-node.env.example").read_text()
    assert re.search(r"^POSTGRES_PASSWORD=$", example, re.MULTILINE)
    set_in_file = {f"LNM_{k}" for k in _env_example_values()}
    for name in ("scp", "sweeper", "worker-gpu", "worker-cpu"):
        overridden = set(services[name]["environment"]) & set_in_file
        assert not overridden, f"{name}: environment: overrides {overridden} of the env file"


def test_dockerfile_copies_every_package_the_project_installs() -> None:
    import tomllib

    pyproject = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) \1$", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE))
    assert packages <= copied, f"not in the image: {packages - copied}"


def test_systemd_units_umask_0077() -> None:
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        assert re.search(r"^UMask=0077$", unit.read_text(), re.MULTILINE), unit.name


def test_compose_ohif_service_serves_pinned_viewer_beside_orthanc() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    ohif = compose["services"]["ohif"]
    version = (DEPLOY / "ohif" / "VERSION").read_text().strip()
    volumes = " ".join(ohif["volumes"])
    assert f"ohif-{version}/dist" in volumes  # the dist scripts/install.sh installs
    assert "./ohif/app-config.js" in volumes and "./ohif/nginx.conf" in volumes
    assert "orthanc" in ohif["depends_on"]
    nginx = (DEPLOY / "ohif" / "nginx.conf").read_text()
    assert "proxy_pass http://orthanc:8042/dicom-web/" in nginx
    assert "window.location.origin + '/dicom-web'" in (DEPLOY / "ohif" / "app-config.js").read_text()
