"""`lnm-node labels import | dataset build | train | compare | cv-summary`: retraining for the site admin.

Thin commands: parse, build settings, call the functions in ``training/`` and ``db/``.
Registered in ``cli.main`` by :func:`register`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.options import (
    CalibrationChoice,
    CalibrationOption,
    HomeOption,
    OperatingPointOption,
    check_policy,
    fail,
    make_console,
    model_spec,
    print_operating_point,
    settings_or_exit,
)
from kernel.settings import Settings

if TYPE_CHECKING:
    from db.labels import LabelRecord
    from training.coverage import LeftOut
    from training.groups import GroupKey

console = make_console()
labels_app = typer.Typer(help="Pathology outcomes of received studies.", no_args_is_help=True)
dataset_app = typer.Typer(help="Frozen dataset manifests for training.", no_args_is_help=True)
TABLE_FIGURES = ("n", "auc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "kappa",
                 "dice_mean", "dice_median", "brier", "ece")  # fmt: skip


def _settings(home: Path | None) -> Settings:
    return settings_or_exit(console, home)


@labels_app.command("import")
def labels_import(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="CSV: a UID column, outcome, node_station, date.")
    ],
    home: HomeOption = None,
    actor: Annotated[str, typer.Option("--actor")] = "admin",
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Overwrite stored labels whose known outcome the file changes (each audited).",
        ),
    ] = False,
) -> None:
    """Validate a pathology CSV and join it to the studies the node received.

    Every label whose outcome the file changes is printed (UID, old -> new) and audited. A
    known outcome (metastatic, benign) is overwritten only with --replace: without it the
    import stops before writing anything. An unknown outcome is filled in without it.
    """
    from db.labels import OutcomeConflict, upsert_labels
    from db.session import make_sessionmaker

    records = _label_records(file)
    sessions = make_sessionmaker(_settings(home).database_url)
    try:
        with sessions.begin() as session:
            result = upsert_labels(session, records, file.name, actor, replace)
    except OutcomeConflict as exc:
        for change in exc.changes:
            console.print(f"outcome would change: {change}")
        fail(console, exc)
    for change in result.changed:
        console.print(f"outcome changed: {change}")
    console.print(f"{len(records)} labels imported: {result.matched} matched, "
                  f"{result.unmatched} unmatched, {len(result.changed)} outcome(s) changed")  # fmt: skip


def _label_records(path: Path) -> list[LabelRecord]:
    """The rows of a pathology CSV (``read_label_file``); exit 1 in one line naming the row
    to fix (or why the file cannot be read)."""
    from training.pathology_labels import LabelFileError, read_label_file

    try:
        return read_label_file(path)
    except (LabelFileError, OSError) as exc:
        fail(console, exc)


ModelOption = Annotated[
    str | None, typer.Option("--model", help="Key whose spec names the inputs (study-level).")
]
NetworkOption = Annotated[
    str | None,
    typer.Option(help="Network name from `lnm-node networks`, for a key not registered yet."),
]
BackboneOption = Annotated[str | None, typer.Option(help="Backbone of --network.")]
SizeOption = Annotated[
    int, typer.Option(help="Input size of --network (a registered key: its own).")
]
FramesOption = Annotated[
    int | None, typer.Option(help="Cine frames or CEUS key frames of --network.")
]


def _spec(settings: Settings, key: str, network: str | None, backbone: str | None, size: int,
          frames: int | None):  # type: ignore[no-untyped-def]  # fmt: skip
    """The spec to build a dataset for or train (``training.networks.resolve_spec``)."""
    from inference.registry import Registry
    from training.networks import resolve_spec

    try:
        return resolve_spec(Registry.from_settings(settings), key, network, backbone, size, frames)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@dataset_app.command("build")
def dataset_build(
    out: Annotated[Path, typer.Option("--out", help="Folder for manifest.json and manifest.csv.")],
    image_folder: Annotated[Path | None, typer.Option(help="Image folder with labels.csv.")] = None,
    dicom_folder: Annotated[
        Path | None, typer.Option(help="Folder of DICOM files (with --labels).")
    ] = None,
    labels: Annotated[Path | None, typer.Option(help="Pathology CSV for --dicom-folder.")] = None,
    from_node: Annotated[
        bool, typer.Option("--from-node", help="The node's labelled studies.")
    ] = False,
    model: ModelOption = None,
    network: NetworkOption = None,
    backbone: BackboneOption = None,
    size: SizeOption = 256,
    frames: FramesOption = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option()] = 2026,
    home: HomeOption = None,
) -> None:
    """Freeze a dataset: every file with its sha256, label, group and fold.

    With --model KEY (DICOM sources): one row per labelled study, series or instance, holding
    the inputs KEY's spec names, selected as inference selects them; units without one are
    listed as excluded, with the reason. A DICOM case's group is a keyed pseudonym of its
    patient (HOME/keys/dataset-groups.key; never the PatientID, nor its plain hash), else its
    study. Studies without a label and labels without a study are listed
    by UID (manifest.json left_out); folds with fewer than 5 test cases of a class are warned of.
    """
    from training import manifest as mf

    sources = [image_folder is not None, dicom_folder is not None, from_node]
    if sum(sources) != 1:
        raise typer.BadParameter("give exactly one of --image-folder, --dicom-folder, --from-node")
    if dicom_folder is not None and labels is None:
        raise typer.BadParameter("--dicom-folder needs --labels")
    settings = _settings(home)
    if model is not None:
        if image_folder is not None:
            raise typer.BadParameter("--model takes DICOM studies: --dicom-folder or --from-node")
        spec = _spec(settings, model, network, backbone, size, frames)
        _build_study_dataset(settings, spec, dicom_folder, labels, out, folds, seed)
        return
    left_out = None
    if image_folder is not None:
        rows, source = mf.from_image_folder(image_folder), f"image folder {image_folder}"
    elif dicom_folder is not None:
        records = _label_records(labels)  # type: ignore[arg-type]
        paths = sorted(p for p in dicom_folder.rglob("*") if p.is_file())
        rows, unlabelled, left_out = mf.from_dicom_files(paths, records, _group_key(settings))
        source = f"DICOM folder {dicom_folder} with {labels.name} ({unlabelled} files unlabelled)"  # type: ignore[union-attr]
    else:
        found, _, left_out = _node_labels(settings)
        rows, source = _node_rows(found, _group_key(settings)), "node database"
    try:
        manifest = mf.build_manifest(rows, source, folds, seed, left_out)
    except ValueError as exc:
        fail(console, exc)
    path = mf.write_manifest(manifest, out)
    console.print(f"{manifest['n']} rows ({manifest['n_positive']} positive) in "
                  f"{manifest['n_groups']} groups -> {path}")  # fmt: skip
    if left_out is not None:
        console.print(left_out.summary())
    _warn_thin_folds(manifest)


def _warn_thin_folds(manifest: dict) -> None:
    """Print the manifest's thin-fold warning (``training.splits.balance_record``), if any."""
    warning = manifest["fold_balance"]["warning"]
    if warning:
        console.print(warning, style="yellow", soft_wrap=True)


def _node_labels(
    settings: Settings,
) -> tuple[list[tuple[str, str, int]], list[LabelRecord], LeftOut]:
    """(labelled instances, label records, what is left out) of the node's database, after
    matching the labels imported before their study arrived (``db.labels.rematch``)."""
    from db.labels import label_records, labelled_instances, rematch
    from db.session import make_sessionmaker
    from training.coverage import node_left_out

    with make_sessionmaker(settings.database_url).begin() as session:
        rematch(session)
        session.flush()
        return labelled_instances(session), label_records(session), node_left_out(session)


def _build_study_dataset(settings: Settings, spec, dicom_folder: Path | None,  # type: ignore[no-untyped-def]
                         labels: Path | None, out: Path, folds: int, seed: int) -> None:  # fmt: skip
    """``dataset build --model``: the labelled units of a DICOM folder or of the node."""
    from inference.selection import CeusRule
    from training.study_dataset import build_study_dataset, labelled_units, write_study_dataset

    if dicom_folder is not None:
        records = _label_records(labels)  # type: ignore[arg-type]
        paths = sorted(p for p in dicom_folder.rglob("*") if p.is_file() and p.name[0] != ".")
        source = f"DICOM folder {dicom_folder.name} with {labels.name}"  # type: ignore[union-attr]
    else:
        found, records, node_left = _node_labels(settings)
        paths = [Path(path) for path, _, _ in found]
        source = "node database"
    units, left_out = labelled_units(paths, records, _group_key(settings))
    if dicom_folder is None:
        left_out = left_out | node_left
    try:
        manifest, tensors = build_study_dataset(
            spec, units, source, folds, seed, CeusRule.from_settings(settings), left_out
        )
    except ValueError as exc:
        fail(console, exc)
    path = write_study_dataset(manifest, tensors, out)
    for row in manifest["excluded"]:
        console.print(f"excluded {row['level']} {row['uid']}: {row['reason']}")
    console.print(
        f"{len(records)} labels, {len(units)} labelled units: {manifest['n']} kept "
        f"({manifest['n_positive']} positive, {manifest['n_groups']} groups), "
        f"{manifest['n_excluded']} excluded -> {path}"
    )
    console.print(left_out.summary())
    _warn_thin_folds(manifest)


def _group_key(settings: Settings) -> GroupKey:
    """The home's dataset group key (``HOME/keys/dataset-groups.key``, made on first use)."""
    from training.groups import GroupKey

    return GroupKey.of_home(settings.home)


def _node_rows(found: list[tuple[str, str, int]], group_key: GroupKey) -> list:  # type: ignore[type-arg]
    """Manifest rows of the node's labelled instances; group = patient pseudonym, else study."""
    import pydicom

    from inference.registry import sha256_file
    from training.manifest import ManifestRow

    rows = []
    for path, _, outcome in found:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        rows.append(
            ManifestRow(
                str(Path(path).absolute()),
                sha256_file(Path(path)),
                "dicom",
                outcome,
                group_key.group(header),
            )
        )
    return rows


def train(
    model_key: Annotated[
        str, typer.Argument(metavar="MODEL_KEY", help="Key of the model to train (and package).")
    ],
    dataset: Annotated[
        Path,
        typer.Argument(
            metavar="DATASET", help="Study-level dataset, manifest.json, image folder or .npz."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Run folder (per-fold artefacts; resumable).")],
    network: NetworkOption = None,
    backbone: BackboneOption = None,
    size: SizeOption = 256,
    frames: FramesOption = None,
    folds: Annotated[
        int | None,
        typer.Option(min=2, help="Folds (default: the manifest's frozen folds, else 5)."),
    ] = None,
    seed: Annotated[int, typer.Option()] = 2026,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ...")] = "cpu",
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    seconds: Annotated[float | None, typer.Option(help="Time budget per fold (s).")] = None,
    patience: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Stop a fold when its inner-validation score has not improved "
            "for this many epochs (default: train to --epochs or --seconds).",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    learning_rate: Annotated[float, typer.Option()] = 1e-3,
    ema_decay: Annotated[
        float | None,
        typer.Option(
            help="Validate and keep an exponential moving average of the weights with this "
            "decay (e.g. 0.99) instead of the raw weights (default: off).",
        ),
    ] = None,
    augment: Annotated[bool, typer.Option("--augment/--no-augment")] = True,
    pretrain: Annotated[
        Path | None, typer.Option(help="Dataset to pretrain the shared encoder on first.")
    ] = None,
    pretrain_encoder_file: Annotated[
        Path | None,
        typer.Option(
            "--pretrain-encoder",
            exists=True,
            dir_okay=False,
            help="A saved shared-encoder state dict (network.encoder_state_dict()) to "
            "start every fold from; not with --pretrain.",
        ),
    ] = None,
    package: Annotated[
        str | None,
        typer.Option(help="Package the run as this version into HOME/models."),
    ] = None,
    members: Annotated[
        str,
        typer.Option(
            help="--package: 'best' (the fold with the best out-of-fold AUC) or 'all' "
            "(every fold as one ensemble, probabilities averaged)."
        ),
    ] = "best",
    data_note: Annotated[
        str, typer.Option(help="A sentence on the data for the packaged model's card.")
    ] = "",
    operating_point: OperatingPointOption = "youden",
    calibration: CalibrationOption = "none",
    exclude_groups: Annotated[
        list[Path] | None,
        typer.Option(
            "--exclude-groups",
            help="A holdout.json whose groups no fold, pretraining "
            "or selection sees (repeatable); written beside a packaged model.",
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """k-fold cross-validation of any family's network, built as inference builds it; resumable.

    The network is KEY's registered one, or --network (and --backbone, --size, --frames) for a
    key not registered yet. --package writes the fold with the best out-of-fold AUC (--members
    best) or all k folds as one ensemble model (--members all) where the node at --home loads
    models from (HOME/models). One fold gets --calibration fitted and the --operating-point
    threshold chosen on its inner validation split; an ensemble gets its --operating-point on
    the pooled out-of-fold predictions and no calibration (`models calibrate` fits one later).
    --exclude-groups keeps a hold-out out of everything here, for `evaluate --subset holdout`
    to use once, at the end.
    """
    from inference.registry import Registry, RegistryError, site_models_dir
    from training.exclusion import (
        read_excluded_groups,
        record_exclusion,
        without_excluded,
        write_model_holdout,
    )
    from training.gate_data import fit_packaged_gate
    from training.kfold import fold_plan
    from training.package_ensemble import member_spec, package_ensemble
    from training.retrain import (
        DatasetMismatch,
        check_encoder_file,
        describe_dataset,
        load_cases,
        package_run,
        pretrain_encoder,
        retrain,
    )
    from training.splits import fold_balance, thin_fold_warning
    from training.trainer import TrainConfig

    if members not in ("best", "all"):
        raise typer.BadParameter("--members is 'best' or 'all'")
    if learning_rate < 0:
        raise typer.BadParameter("--learning-rate must not be negative")
    if pretrain is not None and pretrain_encoder_file is not None:
        raise typer.BadParameter("--pretrain and --pretrain-encoder exclude each other: choose one")
    settings = _settings(home)
    check_policy(operating_point)
    spec = member_spec(_spec(settings, model_key, network, backbone, size, frames))
    if package:
        try:
            Registry.from_settings(settings).check_version_free(spec.key, package)
        except RegistryError as exc:
            raise typer.BadParameter(str(exc), param_hint="--package") from exc
    try:
        config = TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                             seed=seed, device=device, max_seconds=seconds, augment=augment,
                             patience=patience, ema_decay=ema_decay)  # fmt: skip
    except ValueError as exc:  # TrainConfig says which settings it accepts
        raise typer.BadParameter(str(exc)) from exc
    try:
        asked = read_excluded_groups(exclude_groups or [])
        legacy = _group_key(settings).legacy if asked.groups else None  # old clear-ID hold-outs
        cases, tests, exclusion = without_excluded(*load_cases(dataset, spec), asked, legacy)
        record_exclusion(out, exclusion)
        if exclusion.groups:
            console.print(f"excluded {exclusion.excluded_cases} case(s) of "
                          f"{len(exclusion.groups)} hold-out group(s)")  # fmt: skip
        if exclusion.unmatched_groups:
            console.print(f"warning: {exclusion.unmatched_groups} hold-out group(s) match no case "
                          f"of {dataset}")  # fmt: skip
        plan = fold_plan(cases, tests, folds or 5, seed)  # as retrain draws them
        balance = fold_balance(cases.malignant.tolist(), plan)
        if (warning := thin_fold_warning(balance)) is not None:
            console.print(warning, style="yellow", soft_wrap=True)
        encoder = None
        if pretrain is not None:  # the groups as named: the pretraining data may be keyed otherwise
            pretrain_cases = without_excluded(*load_cases(pretrain, spec), asked, legacy)[0]
            encoder = pretrain_encoder(spec, pretrain_cases, out, config)
        elif pretrain_encoder_file is not None:
            encoder = check_encoder_file(spec, pretrain_encoder_file)
        summary = retrain(spec, cases, tests, out, config, folds, encoder)
    except (DatasetMismatch, ValueError) as exc:
        fail(console, exc)
    label = f"{spec.architecture} ({spec.backbone})" + (
        " + pretrain" if pretrain or pretrain_encoder_file else ""
    )
    print_summary({label: summary["pooled"]})
    if package:
        pack = package_ensemble if members == "all" else package_run
        note = data_note
        if exclusion.groups:
            note = (f"{data_note} {exclusion.excluded_cases} cases of the {len(exclusion.groups)} "
                    "hold-out groups (holdout.json beside the weights) were left out of every "
                    "fold.").strip()  # fmt: skip
        try:
            packaged = pack(spec, out, summary, package, site_models_dir(settings),
                            describe_dataset(dataset, note), calibration.value,
                            operating_point)  # fmt: skip
        except (FileExistsError, ValueError) as exc:
            fail(console, exc)
        if packaged.ensemble is not None:  # every case trained some member: none held out
            packaged = fit_packaged_gate(packaged, cases, None, settings.device)
            what = f"an ensemble of all {packaged.ensemble.members} folds"
        else:
            fold = int(packaged.metrics["packaged_fold"])
            packaged = fit_packaged_gate(packaged, cases,
                                         tests[fold] if tests is not None else None,
                                         settings.device)  # fmt: skip
            what = f"fold {fold}, best out-of-fold AUC; one fold, not an ensemble"
        if exclusion.groups:
            write_model_holdout(packaged.folder, exclusion)
        console.print(f"packaged {packaged.ref} ({what}) into {packaged.folder}")
        print_operating_point(console, packaged)
        gate = packaged.scope.gate
        console.print(f"out-of-domain gate: threshold {gate.threshold:.3f}, {gate.fitted_on}"
                      if gate is not None else "out-of-domain gate: none")  # fmt: skip


def print_summary(pooled_by_name: dict[str, dict]) -> None:
    """A rich table of pooled figures, one row per configuration."""
    table = Table("configuration", *TABLE_FIGURES)
    for name, pooled in pooled_by_name.items():
        table.add_row(name, *(_cell(pooled.get(f)) for f in TABLE_FIGURES))
    console.print(table)


def _cell(value: object) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown_table(pooled_by_name: dict[str, dict]) -> str:
    """The pooled figures as a Markdown table (AUC with its DeLong 95% CI)."""
    head = ["configuration", "n", "AUC (95% CI)", "accuracy", "sensitivity", "specificity", "PPV",
            "NPV", "F1", "kappa", "Dice mean", "Dice median", "Brier", "ECE"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, p in pooled_by_name.items():
        auc = f"{_cell(p.get('auc'))} ({_cell(p.get('auc_ci_low'))}-{_cell(p.get('auc_ci_high'))})"
        cells = [name, _cell(p.get("n")), auc] + [_cell(p.get(f)) for f in TABLE_FIGURES[2:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def cv_summary(
    runs: Annotated[
        list[Path],
        typer.Argument(metavar="RUNS", help="k-fold run folders (fold_<i>/predictions.npz)."),
    ],
    dataset: Annotated[Path, typer.Option(help="The dataset the runs were trained on.")],
    size: Annotated[int, typer.Option()] = 256,
    folds: Annotated[
        int | None, typer.Option(min=2, help="Folds of the runs (default: each run's folds.json).")
    ] = None,
    markdown: Annotated[Path | None, typer.Option(help="Also write the table here.")] = None,
    calibration: Annotated[
        CalibrationChoice | None,
        typer.Option(help="Also a row per run with each fold calibrated on its inner validation."),
    ] = None,
    operating_point: OperatingPointOption = "youden",
) -> None:
    """Re-pool each run's out-of-fold predictions (DeLong CI, calls at each fold's threshold;
    Brier and ECE of the probabilities), without the groups the runs excluded (exclusion.json). With --calibration, each run also gets a row with
    every fold's probabilities calibrated and called at --operating-point, both fitted on that
    fold's inner validation split."""
    from training.calibrate import calibrated_out_of_fold
    from training.exclusion import run_exclusion, without_excluded
    from training.kfold import pool, run_folds
    from training.retrain import dataset_spec, load_cases

    check_policy(operating_point)
    for run in runs:
        if not run.is_dir():  # a path argument that does not exist: a usage error
            raise typer.BadParameter(f"{run}: no such run folder", param_hint="'RUNS'")
    exclusions = {e.digest: e for e in map(run_exclusion, runs)}
    if len(exclusions) > 1:
        fail(console, "the runs excluded different hold-out groups (exclusion.json): "
                      "their out-of-fold cases differ")  # fmt: skip
    (exclusion,) = exclusions.values()
    cases, tests = load_cases(dataset, dataset_spec(dataset, size))
    arrays = without_excluded(cases, tests, exclusion)[0]
    pooled = {}
    for run in runs:
        k = folds or run_folds(run) or 5
        try:
            summary = pool(arrays, run, k)
        except ValueError as exc:  # another dataset or fold count: nothing is rewritten
            fail(console, exc)
        if not summary:
            fail(console, f"{run}: not every one of its {k} folds has predictions")
        pooled[run.name] = summary["pooled"]
        if calibration is not None:
            try:
                figures = calibrated_out_of_fold(run, calibration.value, operating_point)
            except FileNotFoundError as exc:
                fail(console, f"{run}: no inner-validation probabilities ({exc})")
            pooled[f"{run.name} ({calibration.value}, {operating_point})"] = figures
    print_summary(pooled)
    if markdown is not None:
        markdown.write_text(markdown_table(pooled))


def compare(
    model_a: Annotated[
        str,
        typer.Argument(
            metavar="MODEL_A",
            help="Model ref, a k-fold run folder (oof.npz) or an `evaluate` output folder (cases.csv).",
        ),
    ],
    model_b: Annotated[
        str,
        typer.Argument(
            metavar="MODEL_B",
            help="Model ref, a k-fold run folder (oof.npz) or an `evaluate` output folder (cases.csv).",
        ),
    ],
    dataset: Annotated[
        Path | None,
        typer.Argument(
            metavar="DATASET", help="Image folder or study-level dataset (for model refs)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out")] = Path("out/compare"),
    home: HomeOption = None,
) -> None:
    """DeLong's test of two correlated AUCs on the same cases, and a paired Wilcoxon test of
    their Dice on the lesion images both segmented (k-fold runs pooled with lesion flags,
    `evaluate` outputs)."""
    import numpy as np

    from training.evaluate import CASES_FILE
    from training.kfold import POOLED_FILE, read_pooled
    from training.metrics import delong_test, paired_dice_test

    dice = None  # (Dice of a, of b) on the lesion images both segmented, where both did
    if Path(model_a, POOLED_FILE).is_file() and Path(model_b, POOLED_FILE).is_file():
        runs = [read_pooled(Path(run)) for run in (model_a, model_b)]
        if not np.array_equal(runs[0]["malignant"], runs[1]["malignant"]):
            fail(console, "the two runs do not cover the same cases")
        y, pa, pb = runs[0]["malignant"], runs[0]["probability"], runs[1]["probability"]
        if all("lesion" in run for run in runs):  # pooled before the lesion flags: no Dice
            lesion = runs[0]["lesion"].astype(bool)
            lesion &= ~(np.isnan(runs[0]["dice"]) | np.isnan(runs[1]["dice"]))
            dice = runs[0]["dice"][lesion], runs[1]["dice"][lesion]
    elif Path(model_a, CASES_FILE).is_file() and Path(model_b, CASES_FILE).is_file():
        try:
            y, pa, pb, dice = _evaluated_pair(Path(model_a), Path(model_b))
        except ValueError as exc:
            fail(console, exc)
    else:
        if dataset is None:
            raise typer.BadParameter("comparing registered models needs DATASET")
        y, pa, pb, dice = _evaluate_pair(model_a, model_b, dataset, out, _settings(home))
    known = y >= 0
    result = {"a": model_a, "b": model_b, **delong_test(y[known], pa[known], pb[known])}
    if dice is not None and len(dice[0]):
        result["dice"] = paired_dice_test(*dice)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print_json(json.dumps(result))


def _evaluated_pair(a: Path, b: Path):  # type: ignore[no-untyped-def]
    """(labels, probabilities of a, of b, (Dice of a, of b) on the lesion images or None) of
    two `evaluate` outputs, on the cases both hold."""
    import csv

    import numpy as np

    from training.evaluate import CASES_FILE

    columns = []
    for folder in (a, b):
        with (folder / CASES_FILE).open() as handle:
            rows = {r.get("image") or r["unit"]: r for r in csv.DictReader(handle)}
        columns.append(rows)
    keys = sorted(columns[0].keys() & columns[1].keys())
    if not keys:
        raise ValueError(f"{a} and {b} share no evaluated case")
    left_out = len(columns[0].keys() | columns[1].keys()) - len(keys)
    if left_out:  # e.g. images one model's gate declined
        console.print(f"{left_out} case(s) evaluated by one side only are left out")
    y = np.array([int(columns[0][k]["malignant"]) if columns[0][k]["malignant"] else -1
                  for k in keys])  # fmt: skip
    lesion = [k for k in keys
              if columns[0][k].get("reference_empty") == "0"
              and all(c[k].get("dice") not in (None, "", "nan") for c in columns)]  # fmt: skip
    dice = tuple(np.array([float(c[k]["dice"]) for k in lesion]) for c in columns)
    return (
        y,
        np.array([float(columns[0][k]["probability"]) for k in keys]),
        np.array([float(columns[1][k]["probability"]) for k in keys]),
        dice if lesion else None,
    )


def _evaluate_pair(a: str, b: str, dataset: Path, out: Path, settings: Settings):  # type: ignore[no-untyped-def]
    from inference.registry import Registry
    from inference.selection import CeusRule
    from training.evaluate import evaluate, evaluate_studies
    from training.study_dataset import is_study_dataset

    registry = Registry.from_settings(settings)
    for ref, folder in ((a, out / "a"), (b, out / "b")):
        spec = model_spec(registry, ref, settings.default_model)
        if is_study_dataset(dataset):  # each study through run_model, as `evaluate` does
            evaluate_studies(
                spec, dataset, folder, settings.device, CeusRule.from_settings(settings)
            )
        else:
            evaluate(spec, dataset, folder, device=settings.device)
    return _evaluated_pair(out / "a", out / "b")


def register(app: typer.Typer, models_app: typer.Typer) -> None:
    """Add the admin commands to the ``lnm-node`` app and its ``models`` sub-app."""
    from cli import models_admin

    app.add_typer(labels_app, name="labels")
    app.add_typer(dataset_app, name="dataset")
    app.command("train")(train)
    app.command("compare")(compare)
    app.command("cv-summary")(cv_summary)
    models_admin.register(models_app)
