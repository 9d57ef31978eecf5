"""Re-package a registered model, weights unchanged, with a calibration and an operating point
fitted on a labelled image folder a site names: a NEW version beside the old one.

The folder's images run through ``training.evaluate`` (the node's transforms; ungated, so every
named image counts); calibration and threshold are fitted on the network's own probabilities
(``training.calibrate``). Calibration leaves the ranking, so AUC and Dice, as they were; the
threshold-dependent figures of the old version no longer hold and are not copied.
"""

from __future__ import annotations

import csv
import logging
import shutil
from collections.abc import Collection
from pathlib import Path

import numpy as np

from inference.calibration import calibrate
from inference.registry import SPEC_FILE, CalibrationMethod, ModelSpec
from training.calibrate import choose_operating_point, fit_calibration
from training.evaluate import CASES_FILE, evaluate
from training.package import calibration_section

logger = logging.getLogger(__name__)

#: figures a calibration leaves as they were (ranking and masks)
KEPT_FIGURES = ("n", "auc", "auc_ci_low", "auc_ci_high", "dice_mean", "dice_median", "dice_n")


def network_probabilities(cases_csv: Path) -> tuple[np.ndarray, np.ndarray]:
    """(labels, the network's own probabilities) of the labelled rows of an evaluation's
    ``cases.csv``."""
    with Path(cases_csv).open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["malignant"] != ""]
    y = np.array([int(r["malignant"]) for r in rows], dtype=int)
    return y, np.array([float(r["network_probability"]) for r in rows], dtype=float)


def recalibrated_card(spec: ModelSpec, base: ModelSpec, source: str) -> str:
    """The new version's card: what changed, the calibration and operating point, then the
    base version's card (its threshold-dependent figures at its own threshold)."""
    intro = (
        f"Re-packaged from {base.ref} with the same weights (sha256 `{spec.weights_sha256}`); "
        f"calibration and threshold fitted on {source}. Temperature scaling keeps the ranking "
        "of cases, so AUC and Dice are those of the base version (isotonic regression can tie "
        "cases); sensitivity and specificity at the new threshold must be measured with "
        "`lnm-node evaluate` on other cases before promotion."
    )
    lines = [
        f"# {spec.name} ({spec.ref})",
        "",
        intro,
        *calibration_section(spec),
        "",
        f"## Card of the base version {base.ref}",
        "",
    ]
    base_card = base.card_path.read_text().splitlines()
    return "\n".join(lines + ["#" + line if line.startswith("#") else line for line in base_card])


def recalibrate(
    spec: ModelSpec,
    dataset: Path,
    version: str,
    models_dir: Path,
    out: Path,
    *,
    calibration: CalibrationMethod | str,
    policy: str,
    groups: Collection[str] | None = None,
    description: str = "",
    device: str = "cpu",
) -> ModelSpec:
    """Package ``spec``'s files as ``version`` into ``models_dir/<key>-<version>/`` with
    ``calibration`` fitted and ``policy``'s threshold chosen on ``dataset`` (an image folder
    with labels.csv; only ``groups`` when given). ``out`` receives the evaluation of the
    network on those images. Returns the new spec. Raises ``FileExistsError`` when the
    target exists and ``ValueError`` when the images lack either class."""
    target = Path(models_dir) / f"{spec.key}-{version}"
    if (target / SPEC_FILE).exists():
        raise FileExistsError(f"{target} exists: package under another version")
    evaluate(spec, dataset, out, subset_groups=groups, device=device, gate=False)
    y, p = network_probabilities(Path(out) / CASES_FILE)
    where = description or (
        f"{Path(dataset).name}: {len(y)} labelled images ({int(y.sum())} positive)"
        + ("" if groups is None else f" of {len(set(groups))} named groups")
    )
    fitted = fit_calibration(calibration, y, p, where)
    kept = None if fitted.method is CalibrationMethod.NONE else fitted
    threshold, point = choose_operating_point(policy, y, calibrate(kept, p), where)
    kept_figures = KEPT_FIGURES
    if fitted.method is CalibrationMethod.ISOTONIC:  # ties cases: AUC no longer the base's
        kept_figures = tuple(name for name in KEPT_FIGURES if not name.startswith("auc"))
    fields = spec.model_dump(mode="json")
    fields.update(
        version=version,
        threshold=threshold,
        calibration=None if kept is None else kept.model_dump(mode="json"),
        operating_point=point.model_dump(mode="json"),
        metrics={k: v for k, v in spec.metrics.items() if k in kept_figures},
        evaluated_on=f"{spec.evaluated_on} (figures of {spec.ref}: AUC and Dice only, which "
        "calibration does not change)",
    )
    new = ModelSpec.model_validate(fields)
    target.mkdir(parents=True, exist_ok=True)
    for path in spec.folder.iterdir():
        if path.is_file() and path.name not in (SPEC_FILE, spec.card):
            shutil.copy2(path, target / path.name)
    new.save(target)
    loaded = ModelSpec.load(target)
    (target / new.card).write_text(recalibrated_card(loaded, spec, where) + "\n")
    logger.info("re-packaged %s as %s into %s", spec.ref, loaded.ref, target)
    return loaded
