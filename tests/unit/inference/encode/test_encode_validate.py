"""Tests for inference.encode.validate without the validators: clear errors when absent."""

from __future__ import annotations

import pytest

from inference.encode import validate
from inference.encode.validate import ValidatorMissing


@pytest.mark.parametrize(
    ("function", "program"),
    [
        (validate.dciodvfy_errors, "dciodvfy"),
        (validate.dsrdump_errors, "dsrdump"),
        (validate.pixelmed_sr_errors, "java"),
    ],
)
def test_validator_not_installed_raises_named_error(monkeypatch, tmp_path, function, program):
    monkeypatch.setattr(validate.shutil, "which", lambda name: None)
    with pytest.raises(ValidatorMissing, match=program):
        function(tmp_path / "x.dcm")


def test_dciodvfy_errors_missing_file_raises(tmp_path):
    if validate.shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy is not installed")
    with pytest.raises(FileNotFoundError):
        validate.dciodvfy_errors(tmp_path / "absent.dcm")
