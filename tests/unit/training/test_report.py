"""The one-page HTML evaluation report."""

from __future__ import annotations

from pathlib import Path

from training.report import REPORT_FILE, render_report, write_report

PNG = b"\x89PNG\r\n\x1a\nfake"


def test_render_report_figures_and_images_embedded() -> None:
    page = render_report(
        {"model": "m@1", "dataset": "d", "n": 10, "auc": 0.8, "auc_ci_low": 0.6,
         "auc_ci_high": 0.95, "lr_pos": 2.5, "threshold": 0.3, "dice_mean": None},
        {"roc.png": PNG},
    )  # fmt: skip
    assert "0.800 (95% CI 0.600-0.950, DeLong)" in page
    assert "<th>LR+</th><td>2.500</td>" in page and "<td>n/a</td>" in page
    assert 'src="data:image/png;base64,iVBORw0KGgpmYWtl"' in page


def test_write_report_missing_plots_still_written(tmp_path: Path) -> None:
    path = write_report({"n": 3}, tmp_path)
    assert path == tmp_path / REPORT_FILE and "<img" not in path.read_text()
