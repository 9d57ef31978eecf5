"""`lnm-node labels import | dataset build | train | compare | cv-summary`: retraining for the site admin.

Thin commands: parse, build settings, call the functions in ``training/`` and ``db/``.
Registered in ``cli.main`` by :func:`register`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kernel.settings import Settings, load_settings

console = Console()
labels_app = typer.Typer(help="Pathology outcomes of received studies.", no_args_is_help=True)
dataset_app = typer.Typer(help="Frozen dataset manifests for training.", no_args_is_help=True)
HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Folder for spool, database and queue.")
]
TABLE_FIGURES = ("n", "auc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "kappa",
                 "dice_mean", "dice_median")  # fmt: skip


def _settings(home: Path | None) -> Settings:
    try:
        return load_settings(home=home)
    except ValueError as exc:
        console.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc


@labels_app.command("import")
def labels_import(
    file: Annotated[Path, typer.Argument(help="CSV: a UID column, outcome, node_station, date.")],
    home: HomeOption = None,
    actor: Annotated[str, typer.Option("--actor")] = "admin",
) -> None:
    """Validate a pathology CSV and join it to the studies the node received."""
    from db.labels import upsert_labels
    from db.session import make_sessionmaker
    from training.pathology_labels import LabelFileError, read_label_file

    try:
        records = read_label_file(file)
    except (LabelFileError, OSError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    sessions = make_sessionmaker(_settings(home).database_url)
    with sessions.begin() as session:
        matched, unmatched = upsert_labels(session, records, file.name, actor)
    console.print(f"{len(records)} labels imported: {matched} matched, {unmatched} unmatched")


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
    folds: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option()] = 2026,
    home: HomeOption = None,
) -> None:
    """Freeze a dataset: every file with its sha256, label, group and fold."""
    from training import manifest as mf

    sources = [image_folder is not None, dicom_folder is not None, from_node]
    if sum(sources) != 1:
        raise typer.BadParameter("give exactly one of --image-folder, --dicom-folder, --from-node")
    if image_folder is not None:
        rows, source = mf.from_image_folder(image_folder), f"image folder {image_folder}"
    elif dicom_folder is not None:
        from training.pathology_labels import read_label_file

        if labels is None:
            raise typer.BadParameter("--dicom-folder needs --labels")
        paths = sorted(p for p in dicom_folder.rglob("*") if p.is_file())
        rows, unlabelled = mf.from_dicom_files(paths, read_label_file(labels))
        source = f"DICOM folder {dicom_folder} with {labels.name} ({unlabelled} files unlabelled)"
    else:
        from db.labels import labelled_instances
        from db.session import make_sessionmaker

        with make_sessionmaker(_settings(home).database_url)() as session:
            found = labelled_instances(session)
        rows, source = _node_rows(found), "node database"
    try:
        manifest = mf.build_manifest(rows, source, folds, seed)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    path = mf.write_manifest(manifest, out)
    console.print(f"{manifest['n']} rows ({manifest['n_positive']} positive) in "
                  f"{manifest['n_groups']} groups -> {path}")  # fmt: skip


def _node_rows(found: list[tuple[str, str, int]]) -> list:  # type: ignore[type-arg]
    """Manifest rows of the node's labelled instances; group = patient, else study."""
    import pydicom

    from inference.registry import sha256_file
    from training.manifest import ManifestRow

    rows = []
    for path, study_uid, outcome in found:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        group = str(header.get("PatientID", "") or "") or study_uid
        rows.append(
            ManifestRow(
                str(Path(path).absolute()), sha256_file(Path(path)), "dicom", outcome, group
            )
        )
    return rows


def load_dataset(path: Path, size: int):  # type: ignore[no-untyped-def]
    """Training arrays of a packed .npz, a manifest.json (or its folder) or an image folder."""
    from training.datasets import arrays_from_rows
    from training.gpu_kfold import load_arrays
    from training.image_folders import read_labelled_folder
    from training.manifest import MANIFEST_FILE, manifest_arrays

    if path.suffix == ".npz":
        return load_arrays(path, size, None)
    manifest = path if path.suffix == ".json" else path / MANIFEST_FILE
    if manifest.is_file():
        return manifest_arrays(json.loads(manifest.read_text()), size)
    rows = [r for r in read_labelled_folder(path) if not r.label_conflict]
    return arrays_from_rows(rows, size, root=path)


def _network_name(settings: Settings, model_key: str, network: str | None) -> str:
    if network:
        return network
    from inference.registry import Registry, RegistryError

    try:
        spec = Registry.from_settings(settings).get(model_key, model_key)
    except RegistryError:
        return "ynet"
    if spec.architecture == "hybrid-swin":
        return f"hybrid:{spec.backbone}"
    if spec.architecture == "classifier":
        return f"classifier:{spec.backbone}"
    return "ynet"


def train(
    model_key: Annotated[str, typer.Argument(help="Key of the model to train (and package).")],
    dataset: Annotated[Path, typer.Argument(help="Image folder, manifest.json or packed .npz.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder (per-fold artefacts; resumable).")],
    network: Annotated[
        str | None,
        typer.Option(
            help="ynet, classifier:<backbone>, hybrid:swin-f<N>; default: the registered key's."
        ),
    ] = None,
    folds: Annotated[int, typer.Option()] = 5,
    seed: Annotated[int, typer.Option()] = 2026,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ...")] = "cpu",
    size: Annotated[int, typer.Option(help="Model input size.")] = 256,
    epochs: Annotated[int, typer.Option()] = 30,
    seconds: Annotated[float | None, typer.Option(help="Time budget per fold (s).")] = None,
    batch_size: Annotated[int, typer.Option()] = 16,
    learning_rate: Annotated[float, typer.Option()] = 1e-3,
    pretrain: Annotated[
        Path | None, typer.Option(help="Dataset to pretrain the hybrid's encoder on.")
    ] = None,
    package: Annotated[
        str | None, typer.Option(help="Package fold 0's best weights as this version.")
    ] = None,
    models_dir: Annotated[
        Path | None, typer.Option(help="Registry folder to package into.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """k-fold cross-validation of any family: per-fold and pooled out-of-fold metrics; resumable."""
    import torch

    from training.families import network_factory
    from training.kfold import cross_validate
    from training.trainer import TrainConfig, train_network

    settings = _settings(home)
    name = _network_name(settings, model_key, network)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                         device=device, max_seconds=seconds)  # fmt: skip
    arrays = load_dataset(dataset, size)
    make = network_factory(name, size)
    if pretrain is not None:
        if not name.startswith("hybrid:"):
            raise typer.BadParameter("--pretrain needs a hybrid network (its shared encoder)")
        encoder_path = out / "pretrain" / "encoder.pt"
        if not encoder_path.is_file():
            outcome = train_network(
                make, load_dataset(pretrain, size), out / "pretrain", config, "pretrain"
            )
            pretrained = make()
            pretrained.load_state_dict(torch.load(outcome.best_state_path, weights_only=True))
            torch.save(pretrained.encoder_state_dict(), encoder_path)
        encoder = torch.load(encoder_path, weights_only=True)
        base = make

        def make():  # type: ignore[no-untyped-def]
            built = base()
            built.load_encoder_state_dict(encoder)
            return built

    summary = cross_validate(make, arrays, out, config, k=folds)
    print_summary({name + (" + pretrain" if pretrain else ""): summary["pooled"]})
    if package:
        _package(settings, model_key, package, name, out, summary, dataset, size, models_dir)


def _package(settings: Settings, key: str, version: str, name: str, out: Path, summary: dict,
             dataset: Path, size: int, models_dir: Path | None) -> None:  # fmt: skip
    from training.families import network_factory, registry_fields
    from training.package import ModelFacts, package_model

    pooled = summary["pooled"]
    fields = registry_fields(name)
    facts = ModelFacts(
        name=f"{name} ({key})"[:64], input_size=size,
        threshold=min(max(json.loads((out / "fold_0" / "train.json").read_text())["threshold"], 0.01), 0.99),
        trained_on=f"{dataset}: fold 0's training part of a {len(summary['folds'])}-fold cross-validation",
        evaluated_on=f"{dataset}: pooled out-of-fold predictions of every fold",
        metrics={k: v for k, v in pooled.items() if isinstance(v, int | float)},
        heatmap_layer=network_factory(name, size)().gradcam_layer, **fields,
    )  # fmt: skip
    target = (models_dir or settings.models_dir or out / "models") / f"{key}-{version}"
    package_model(out / "fold_0" / "best.pt", target, key, version, facts)
    console.print(f"packaged {key}@{version} into {target}")


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
            "NPV", "F1", "kappa", "Dice mean", "Dice median"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, p in pooled_by_name.items():
        auc = f"{_cell(p.get('auc'))} ({_cell(p.get('auc_ci_low'))}-{_cell(p.get('auc_ci_high'))})"
        cells = [name, _cell(p.get("n")), auc] + [_cell(p.get(f)) for f in TABLE_FIGURES[2:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def cv_summary(
    runs: Annotated[
        list[Path], typer.Argument(help="k-fold run folders (fold_<i>/predictions.npz).")
    ],
    dataset: Annotated[Path, typer.Option(help="The dataset the runs were trained on.")],
    size: Annotated[int, typer.Option()] = 256,
    folds: Annotated[int, typer.Option()] = 5,
    markdown: Annotated[Path | None, typer.Option(help="Also write the table here.")] = None,
) -> None:
    """Re-pool each run's out-of-fold predictions (DeLong CI, calls at each fold's threshold)."""
    from training.kfold import pool

    arrays = load_dataset(dataset, size)
    pooled = {}
    for run in runs:
        summary = pool(arrays, run, folds)
        if not summary:
            console.print(f"[red]{run}: not every fold has predictions[/red]")
            raise typer.Exit(1)
        pooled[run.name] = summary["pooled"]
    print_summary(pooled)
    if markdown is not None:
        markdown.write_text(markdown_table(pooled))


def compare(
    model_a: Annotated[str, typer.Argument(help="Model ref, or a k-fold run folder (oof.npz).")],
    model_b: Annotated[str, typer.Argument(help="Model ref, or a k-fold run folder (oof.npz).")],
    dataset: Annotated[Path | None, typer.Argument(help="Image folder (for model refs).")] = None,
    out: Annotated[Path, typer.Option("--out")] = Path("out/compare"),
    home: HomeOption = None,
) -> None:
    """DeLong's test of two correlated AUCs on the same cases."""
    import numpy as np

    from training.metrics import delong_test

    if Path(model_a, "oof.npz").is_file() and Path(model_b, "oof.npz").is_file():
        scores = []
        for run in (model_a, model_b):
            with np.load(Path(run, "oof.npz")) as oof:
                order = np.argsort(oof["index"])
                scores.append((oof["malignant"][order], oof["probability"][order]))
        if not np.array_equal(scores[0][0], scores[1][0]):
            console.print("[red]the two runs do not cover the same cases[/red]")
            raise typer.Exit(1)
        y, pa, pb = scores[0][0], scores[0][1], scores[1][1]
    else:
        if dataset is None:
            raise typer.BadParameter("comparing registered models needs DATASET")
        y, pa, pb = _evaluate_pair(model_a, model_b, dataset, out, _settings(home))
    known = y >= 0
    result = {"a": model_a, "b": model_b, **delong_test(y[known], pa[known], pb[known])}
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print_json(json.dumps(result))


def _evaluate_pair(a: str, b: str, dataset: Path, out: Path, settings: Settings):  # type: ignore[no-untyped-def]
    import csv

    import numpy as np

    from inference.registry import Registry
    from training.evaluate import CASES_FILE, evaluate

    registry = Registry.from_settings(settings)
    columns = []
    for ref, folder in ((a, out / "a"), (b, out / "b")):
        evaluate(registry.get(ref, settings.default_model), dataset, folder, device=settings.device)
        with (folder / CASES_FILE).open() as handle:
            rows = list(csv.DictReader(handle))
        columns.append(rows)
    y = np.array([int(r["malignant"]) if r["malignant"] else -1 for r in columns[0]])
    return (
        y,
        np.array([float(r["probability"]) for r in columns[0]]),
        np.array([float(r["probability"]) for r in columns[1]]),
    )


def register(app: typer.Typer, models_app: typer.Typer) -> None:
    """Add the admin commands to the ``lnm-node`` app and its ``models`` sub-app."""
    from cli import models_admin

    app.add_typer(labels_app, name="labels")
    app.add_typer(dataset_app, name="dataset")
    app.command("train")(train)
    app.command("compare")(compare)
    app.command("cv-summary")(cv_summary)
    models_admin.register(models_app)
