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
