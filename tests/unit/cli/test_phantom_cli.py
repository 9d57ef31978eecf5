"""`lnm-node phantom` and `wrap` through typer's runner: bad flags are usage errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


@pytest.mark.parametrize("command", ["phantom", "wrap"])
@pytest.mark.parametrize("body_part", ["", "   ", "A-BODY-PART-NAME-TOO-LONG"])
def test_body_part_not_a_cs_value_exits_2_nothing_written(
    tmp_path: Path, command: str, body_part: str
) -> None:
    """An empty --body-part ended `wrap` in a ValueError traceback (`phantom` after writing)."""
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(image)
    out = tmp_path / "out"
    args = [str(out)] if command == "phantom" else [str(image), "--out", str(out)]
    result = runner.invoke(app, [command, *args, "--body-part", body_part], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "--body-part" in result.output and "must be 1 to 16 characters" in result.output
    assert not out.exists()


def test_phantom_negative_seed_exits_2_nothing_written(tmp_path: Path) -> None:
    """numpy takes no negative seed: it ended in a ValueError traceback."""
    out = tmp_path / "out"
    result = runner.invoke(app, ["phantom", str(out), "--seed", "-5"], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "--seed" in result.output and not out.exists()


def test_wrap_folder_or_missing_image_exits_2_naming_it(tmp_path: Path) -> None:
    """A folder of images ended in "[Errno 21] Is a directory" (exit 1), after nothing was
    checked; a folder or a missing file is now a usage error naming it."""
    missing = tmp_path / "missing.png"
    for given, words in ((tmp_path, "is a directory"), (missing, "does not exist")):
        result = runner.invoke(app, ["wrap", str(given), "--out", str(tmp_path / "out"),
                                     "--body-part", "BREAST"], env={"COLUMNS": "200"})
        assert result.exit_code == 2, result.output
        assert "IMAGES" in result.output and words in result.output
    assert not (tmp_path / "out").exists()
