"""`lnm-node scope show|set|test|fit-gate`: which study goes to which model, per model.

A model's scope is its routing rule (``inference.scope``) and its out-of-domain gate
(``inference.gate``). Defaults come from the model's spec; a site's overrides live in the
database and change only here (``scope set``), every change audited.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from cli.options import HomeOption, fail, make_console, model_spec, settings_or_exit
from kernel.errors import DatasetError

scope_app = typer.Typer(
    help="Routing rules and out-of-domain gates of the models (changes are audited).",
    no_args_is_help=True,
)
console = make_console()
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _node(home: Path | None):  # type: ignore[no-untyped-def]
    """(settings, sessionmaker, registry) of the node at ``home`` (its database migrated)."""
    from db.session import make_sessionmaker
    from inference.registry import Registry

    settings = settings_or_exit(console, home)
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings, make_sessionmaker(settings.database_url), Registry.from_settings(settings)


def _latest(registry, key: str | None):  # type: ignore[no-untyped-def]
    """The highest version of each key (or of ``key`` alone)."""
    keys = [key] if key else sorted({spec.key for spec in registry.specs()})
    return [model_spec(registry, k, k) for k in keys]


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _emit(
    rows: list[dict[str, Any]],
    as_json: bool,
    columns: dict[str, Callable[[dict[str, Any]], str | Text]],
) -> None:
    """Print ``rows`` as JSON, or as a table of ``columns`` (title -> cell of a row)."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*(cell(row) for cell in columns.values()))
    console.print(table)


def _scope_row(spec, override) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from pipeline.scoping import effective_rule, gate_enabled

    rule, source = effective_rule(spec.scope.rule, override)
    gate = spec.scope.gate
    return {
        "model": spec.ref,
        "rule": rule.text(),
        "rule_source": source,
        "gate": "on" if gate_enabled(gate is not None, override) else "off",
        "gate_source": "site" if override is not None and override.gate is not None else "spec",
        "gate_threshold": None if gate is None else gate.threshold,
        "gate_figures": {} if gate is None else gate.figures,
    }


@scope_app.command("show")
def show(
    key: Annotated[
        str | None, typer.Argument(metavar="KEY", help="A model key (default: every model).")
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the rule and gate of each model, and whether they are the spec's or the site's."""
    from db import scope as scope_db

    _, sessions, registry = _node(home)
    with sessions() as session:
        overrides = scope_db.overrides(session)
    rows = [_scope_row(spec, overrides.get(spec.key)) for spec in _latest(registry, key)]
    _emit(
        rows,
        as_json,
        {
            "model": lambda r: r["model"],
            "rule": lambda r: r["rule"],
            "from": lambda r: r["rule_source"],
            "gate": lambda r: f"{r['gate']} ({r['gate_source']})",
            "threshold": lambda r: _number(r["gate_threshold"]),
        },
    )


@scope_app.command("set")
def set_scope(
    keys: Annotated[list[str] | None, typer.Argument(metavar="KEYS", help="Model key(s).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every registered model.")] = False,
    rule: Annotated[
        str | None,
        typer.Option(
            "--rule", help="'all', JSON, or name=value;... e.g. 'modality=US;body_part=BREAST'."
        ),
    ] = None,
    gate: Annotated[str | None, typer.Option("--gate", help="on or off.")] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Back to the spec's rule and gate.")
    ] = False,
    home: HomeOption = None,
    actor: Annotated[
        str, typer.Option("--actor", help="Who makes the change (audit log).")
    ] = "admin",
    as_json: JsonOption = False,
) -> None:
    """Change models' rule and/or gate (audited); new studies are routed by it at once."""
    from db import scope as scope_db
    from inference.scope import parse_rule

    if rule is None and gate is None and not reset:
        raise typer.BadParameter("give --rule, --gate or --reset")
    if gate is not None and gate not in ("on", "off"):
        raise typer.BadParameter("--gate is on or off")
    try:
        parsed = None if rule is None else parse_rule(rule).model_dump(exclude_defaults=True)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--rule") from exc
    _, sessions, registry = _node(home)
    if bool(keys) == every:
        raise typer.BadParameter("give model key(s) or --all")
    specs = _latest(registry, None) if every else [_latest(registry, key)[0] for key in keys or []]
    with sessions.begin() as session:
        for spec in specs:
            scope_db.set_override(
                session,
                spec.key,
                actor,
                rule=parsed,
                gate=None if gate is None else gate == "on",
                reset=reset,
            )
    with sessions() as session:
        overrides = scope_db.overrides(session)
    rows = [_scope_row(spec, overrides.get(spec.key)) for spec in specs]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        console.print(
            f"{row['model']}: rule {row['rule']} ({row['rule_source']}), gate {row['gate']}"
        )


def _study_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


@scope_app.command("test")
def test_scope(
    study_dir: Annotated[
        Path,
        typer.Argument(
            exists=True,
            file_okay=False,
            metavar="STUDY_DIR",
            help="A folder of one study's DICOM files.",
        ),
    ],
    calling_ae: Annotated[
        str | None, typer.Option("--calling-ae", help="As if sent by this AE.")
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """For each model: would it run on these files, and why (rule, gate score, missing input)."""
    from db import scope as scope_db
    from inference.scope import decide
    from kernel.patient import patient_key
    from pipeline.scoping import effective_rule, gate_enabled, mixed_patients_verdict

    settings, sessions, registry = _node(home)
    headers = _headers(_study_paths(study_dir))
    series = _series(headers, calling_ae)
    patients = len({patient_key(header) for _, header in headers})
    with sessions() as session:
        overrides = scope_db.overrides(session)
    rows = []
    for spec in _latest(registry, None):
        override = overrides.get(spec.key)
        rule, source = effective_rule(spec.scope.rule, override)
        verdict = (
            mixed_patients_verdict(spec.ref, patients)
            if patients > 1
            else decide(spec.ref, rule, source, series)
        )
        row: dict[str, Any] = {**verdict.as_dict(), "gate_score": None, "missing_input": None}
        if verdict.run:
            row.update(
                _try_model(
                    spec,
                    [h[0] for h in headers],
                    settings.device,
                    gate_enabled(spec.scope.gate is not None, override),
                )
            )
        rows.append(row)
    _emit(
        rows,
        as_json,
        {
            "model": lambda r: r["model"],
            "runs": lambda r: "yes" if r["run"] else Text("no", style="red"),
            "rule": lambda r: r["rule"],
            "gate score": lambda r: _number(r["gate_score"]),
            "why": lambda r: r["missing_input"] or r["reason"],
        },
    )


def _headers(paths: list[Path]) -> list[tuple[Path, Any]]:
    import pydicom

    headers = []
    for path in paths:
        try:
            headers.append((path, pydicom.dcmread(path, stop_before_pixels=True)))
        except (OSError, pydicom.errors.InvalidDicomError):
            continue
    return headers


def _series(headers: list[tuple[Path, Any]], calling_ae: str | None):  # type: ignore[no-untyped-def]
    from inference.scope import series_attributes

    by_series = {}
    for _, header in headers:
        by_series.setdefault(str(getattr(header, "SeriesInstanceUID", "")), header)
    return [series_attributes(header, calling_ae) for header in by_series.values()]


def _try_model(spec, paths: list[Path], device: str, gated: bool) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Run ``spec`` on ``paths`` as the worker would: gate score, or why it would not run."""
    from inference.gate import OutOfDomain, load_reference
    from inference.loading import load_network
    from inference.runner import run_model
    from kernel.errors import InvalidInput

    reference = load_reference(spec) if gated else None
    try:
        prediction = run_model(spec, load_network(spec, device), paths, device, gate=reference)
    except OutOfDomain as exc:
        return {"run": False, "gate_score": exc.score, "reason": str(exc)}
    except InvalidInput as exc:
        return {"run": False, "missing_input": str(exc), "reason": str(exc)}
    score = next(
        (
            float(n.split("score ")[1].split(",")[0])
            for n in prediction.notes
            if n.startswith("in-domain check")
        ),
        None,
    )
    return {"gate_score": score, "reason": "runs" + ("" if gated else " (gate off)")}


@scope_app.command("fit-gate")
def fit_gate(
    key: Annotated[str, typer.Argument(metavar="KEY", help="Model key (its highest version).")],
    dataset: Annotated[
        str,
        typer.Argument(
            metavar="DATASET", help="In-domain image folder (labels.csv), or 'phantom'."
        ),
    ],
    ood_images: Annotated[
        list[str] | None,
        typer.Option("--ood-images", help="NAME=FOLDER out-of-domain image folder (repeatable)."),
    ] = None,
    ood_dicom: Annotated[
        list[str] | None,
        typer.Option("--ood-dicom", help="NAME=FOLDER out-of-domain DICOM files (repeatable)."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Images per out-of-domain folder.")
    ] = 200,
    layers: Annotated[
        list[str] | None,
        typer.Option(
            "--layer",
            help="Network layer whose pooled output is a feature (repeatable; "
            "default: the Grad-CAM layer).",
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """(Re)compute a packaged model's gate reference and threshold; print its figures.

    The fit leaves the hold-out out (holdout.json's groups, or other phantom seeds) and picks
    the threshold on an inner-validation split; the figures are AUROC per out-of-domain set
    against the hold-out and the false-decline rate on the hold-out.
    """
    from inference.registry import Registry
    from training.gate_data import UnknownLayer, refit_gate

    settings = settings_or_exit(console, home)
    spec = _latest(Registry.from_settings(settings), key)[0]

    def named(values: list[str] | None, option: str) -> dict[str, Path]:
        pairs = [v.partition("=") for v in values or []]
        if any(not sep for _, sep, _ in pairs):
            raise typer.BadParameter("write NAME=FOLDER", param_hint=option)
        folders = {name: Path(folder) for name, _, folder in pairs}
        for folder in folders.values():
            if not folder.is_dir():
                raise typer.BadParameter(f"{folder} is not a folder", param_hint=option)
        return folders

    out_of_domain, dicom = named(ood_images, "--ood-images"), named(ood_dicom, "--ood-dicom")
    try:
        result = refit_gate(
            spec,
            dataset,
            out_of_domain_folders=out_of_domain,
            dicom_folders=dicom,
            folder_limit=limit,
            layers=layers,
            device=settings.device,
        )
    except UnknownLayer as exc:
        raise typer.BadParameter(str(exc), param_hint="--layer") from exc
    except DatasetError:
        raise  # the folder itself is unusable: reported as every command reports it
    except ValueError as exc:  # no holdout.json, too few images, a set without images
        fail(console, f"no gate fitted: {exc}")
    console.print(f"{result.spec.ref}: gate written to {result.spec.gate_path}")
    print(json.dumps(result.figures, indent=2))


def register(app: typer.Typer) -> None:
    """Add the ``scope`` sub-app to ``lnm-node``."""
    app.add_typer(scope_app, name="scope")
