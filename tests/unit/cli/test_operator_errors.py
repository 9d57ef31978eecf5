"""What an operator must fix (a dataset, a model reference, the home folder) is told in one
line, not a traceback: the real command line, ``python -m cli.main``, as the ``lnm-node``
script runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernel.errors import DatasetError
from tests.support.models import package_model
from tests.support.tls import make_pki
from training.datasets import read_image_folder


def _lnm_node(home: Path, *args: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LNM_HOME": str(home), "COLUMNS": "200", **env_vars}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


@pytest.mark.parametrize(
    ("labels", "told"),
    [
        (None, "labels.csv not found: an image folder needs a labels.csv"),
        ("image,malignant\na.png,yes\n", "labels.csv row 2: malignant must be 0 or 1, got 'yes'"),
    ],
)
def test_evaluate_bad_image_folder_one_line(tmp_path: Path, labels: str | None, told: str) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    if labels is not None:
        (folder / "labels.csv").write_text(labels)
    result = _lnm_node(tmp_path / "home", "evaluate", "default", str(folder), "--out",
                       str(tmp_path / "out"))  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"cannot use the dataset: {folder}/{told}" in output
    assert "Traceback" not in output and "│" not in output


def test_fit_gate_missing_folder_one_line(tmp_path: Path) -> None:
    result = _lnm_node(tmp_path / "home", "scope", "fit-gate", "ynet-busi", str(tmp_path / "gone"))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"cannot use the dataset: {tmp_path / 'gone'} is not a folder" in output
    assert "Traceback" not in output


def test_label_conflict_must_be_binary(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("image,malignant,label_conflict\na.png,1,maybe\n")
    with pytest.raises(DatasetError, match="row 2: label_conflict must be 0 or 1, got 'maybe'"):
        read_image_folder(tmp_path)


def test_unknown_model_is_a_usage_error_exit_2(tmp_path: Path) -> None:
    """A reference the user typed that names no model: exit 2 in every command taking one
    (``cli.options.model_spec``); `evaluate` and `compare` exited 1, the `models` commands 2."""
    result = _lnm_node(tmp_path / "home", "evaluate", "nosuch@1.0.0", str(tmp_path), "--out",
                       str(tmp_path / "out"))  # fmt: skip
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, output
    assert "model nosuch@1.0.0 is not registered; known: " in output and "ynet-busi@1.0.0" in output
    assert "Traceback" not in output


def test_model_registered_twice_is_an_operational_failure_exit_1(tmp_path: Path) -> None:
    """A reference that names a model the node cannot use (two folders hold it): exit 1 in one
    line, as in `evaluate`; the `models` commands exited 2 as if it were mistyped."""
    package_model(tmp_path / "models" / "tiny-ynet")
    package_model(tmp_path / "models" / "copied-by-hand")
    result = _lnm_node(tmp_path / "home", "models", "promote", "tiny-ynet@0.1.0",
                       LNM_MODELS_DIR=str(tmp_path / "models"))  # fmt: skip
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    assert "tiny-ynet@0.1.0 is registered twice" in output
    assert "Traceback" not in output and "│" not in output


@pytest.mark.parametrize("command", [["status"], ["jobs", "requeue", "1"], ["models", "list"]])
def test_home_that_cannot_be_made_exits_2(tmp_path: Path, command: list[str]) -> None:
    home = tmp_path / "a-file"
    home.write_text("not a folder")
    result = _lnm_node(home, *command, "--home", str(home))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "cannot use the home folder: " in output and "Traceback" not in output


def test_unreadable_input_file_one_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    result = _lnm_node(tmp_path / "home", "wrap", str(text), "--out", str(tmp_path / "out"),
                       "--body-part", "BREAST")  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"cannot identify image file '{text}'" in output and "Traceback" not in output


@pytest.mark.parametrize("command", ["status", "worker"])
def test_database_that_cannot_be_reached_one_line_without_password(
    tmp_path: Path, command: str
) -> None:
    """A wrong host or port: ``status`` and ``scp``/``beat`` upgrade the schema first, a worker
    checks the connection before it warms its models."""
    url = "postgresql+psycopg://lnm:pw-not-shown@127.0.0.1:1/lnm"
    result = _lnm_node(tmp_path / "home", command, LNM_DATABASE_URL=url)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "cannot use the database postgresql+psycopg://lnm:***@127.0.0.1:1/lnm: " in output
    assert "Connection refused" in output
    assert "pw-not-shown" not in output and "Traceback" not in output


@pytest.mark.parametrize("command", [["worker"], ["beat"], ["scp", "--port", "0"]])
def test_broker_that_cannot_be_reached_one_line_without_password(
    tmp_path: Path, command: list[str]
) -> None:
    """A worker with a wrong broker URL warmed its models, logged "worker ready" and retried
    for ever; scp and beat started without a word."""
    result = _lnm_node(tmp_path / "home", *command, LNM_PROFILE="production",
                       LNM_DATABASE_URL=f"sqlite:///{tmp_path / 'lnm.sqlite3'}",
                       LNM_BROKER_URL="redis://:pw-not-shown@127.0.0.1:1/13")  # fmt: skip
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    assert "cannot reach the broker redis://:**@127.0.0.1:1/13: " in output
    assert "pw-not-shown" not in output and "Traceback" not in output
    assert "worker ready" not in output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a usable GPU")
@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"]])
def test_gpu_device_on_a_host_without_one_stops_before_any_worker(
    tmp_path: Path, command: list[str]
) -> None:
    """Workers on such a host died on their first model and were restarted for ten minutes
    while `serve` never opened its port."""
    result = _lnm_node(tmp_path / "home", *command, LNM_DEVICE="cuda")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "device 'cuda': torch " in output and "no usable CUDA device" in output
    assert "worker ready" not in output and "Traceback" not in output


def test_serve_destination_not_ae_at_host_port_exits_2(tmp_path: Path) -> None:
    result = _lnm_node(tmp_path / "home", "serve", "--port", "0", "--pacs", "garbage")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "destination 'garbage' is not of the form AE@HOST:PORT[+tls]" in output
    assert "Traceback" not in output and "worker ready" not in output


@pytest.mark.parametrize("command", ["scp", "serve"])
def test_tls_key_of_another_certificate_stops_before_listening(tmp_path: Path, command: str) -> None:
    """`serve` warmed its workers, then ended with "cannot listen on ...: [SSL] ..."."""
    pki = make_pki(tmp_path / "pki")
    result = _lnm_node(
        tmp_path / "home", command, "--port", "0",
        LNM_TLS_CERTIFICATE=str(pki.server.certificate), LNM_TLS_PRIVATE_KEY=str(pki.client.key),
        LNM_TLS_CA_CERTIFICATES=str(pki.ca),
    )  # fmt: skip
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    assert f"cannot serve: DICOM TLS files do not load ({pki.server.certificate}, " in output
    assert "worker ready" not in output and "listening" not in output and "Traceback" not in output


def test_train_package_as_a_registered_version_refused_before_training(tmp_path: Path) -> None:
    """Packaged beside the shipped ynet-busi@1.0.0, a second 1.0.0 would leave both copies
    unusable ("registered twice"): the default model's jobs would fail."""
    result = _lnm_node(tmp_path / "home", "train", "ynet-busi", str(tmp_path / "absent.npz"),
                       "--out", str(tmp_path / "run"), "--package", "1.0.0")  # fmt: skip
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, output
    assert "model ynet-busi@1.0.0 is registered already" in output
    assert not (tmp_path / "run").exists()


def test_paths_with_brackets_are_printed_not_read_as_markup(tmp_path: Path) -> None:
    """A file name is text: '[/x]' in it once ended the command with rich's MarkupError."""
    missing = tmp_path / "[/x]" / "[bold]a.dcm"
    result = _lnm_node(tmp_path / "home", "send", str(missing), "--to", "LNMNODE@127.0.0.1:9")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"not sent: {missing} does not exist" in output
    assert "Traceback" not in output and "MarkupError" not in output
