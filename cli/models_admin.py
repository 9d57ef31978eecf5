"""`lnm-node models show|promote|rollback|retire|shadow|calibrate`: model versions for the site admin.

Registered in ``cli.main``'s ``models`` sub-app by :func:`register`. Every change is audited
and takes effect for the next assembled study; jobs already created keep their version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

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

console = make_console()
Actor = Annotated[str, typer.Option("--actor", help="Who makes the change (audit log).")]


def _context(home: Path | None):  # type: ignore[no-untyped-def]
    """(settings, sessionmaker, registry) of the node at ``home``."""
    from db.session import make_sessionmaker
    from inference.registry import Registry

    settings = settings_or_exit(console, home)
    return settings, make_sessionmaker(settings.database_url), Registry.from_settings(settings)


def _row(session, registry, ref: str):  # type: ignore[no-untyped-def]
    """The DB row of ``key@version``, registered from the registry when the node has not yet."""
    from db import model_versions

    key, _, version = ref.partition("@")
    if not version:
        raise typer.BadParameter(f"{ref!r}: give key@version")
    try:
        return model_versions.find_version(session, key, version)
    except model_versions.VersionError:
        spec = model_spec(registry, ref, key)
        row, _ = model_versions.register_version(
            session, spec.key, spec.version, spec.family, spec.weights_sha256, dict(spec.metrics)
        )
        return row


def promote(
    ref: Annotated[str, typer.Argument(metavar="REF", help="key@version")],
    home: HomeOption = None,
    actor: Actor = "admin",
) -> None:
    """Make a version the live one of its key (audited; new studies get it at once)."""
    from db import model_versions

    _, sessions, registry = _context(home)
    with sessions.begin() as session:
        row = _row(session, registry, ref)
        try:
            previous = model_versions.promote(session, row, actor)
        except model_versions.VersionError as exc:
            fail(console, exc)
        replaced = f" (was {previous.model_key}@{previous.version})" if previous else ""
    console.print(f"promoted {ref}{replaced}")


def rollback(
    key: Annotated[str, typer.Argument(metavar="KEY", help="model key")],
    home: HomeOption = None,
    actor: Actor = "admin",
) -> None:
    """Re-enable the version that was live before the current one."""
    from db import model_versions

    _, sessions, _ = _context(home)
    with sessions.begin() as session:
        try:
            row = model_versions.rollback(session, key, actor)
        except model_versions.VersionError as exc:
            fail(console, exc)
        console.print(f"rolled back {key} to {row.version}")


def retire(
    ref: Annotated[str, typer.Argument(metavar="REF", help="key@version")],
    home: HomeOption = None,
    actor: Actor = "admin",
) -> None:
    """Disable a version for good."""
    from db import model_versions

    _, sessions, registry = _context(home)
    with sessions.begin() as session:
        model_versions.retire(session, _row(session, registry, ref), actor)
    console.print(f"retired {ref}")


def shadow(
    ref: Annotated[str, typer.Argument(metavar="REF", help="key@version")],
    home: HomeOption = None,
    off: Annotated[bool, typer.Option("--off", help="Stop shadowing.")] = False,
    actor: Actor = "admin",
) -> None:
    """Run a candidate version beside the live one on new studies, never sending its results."""
    from db import model_versions

    _, sessions, registry = _context(home)
    with sessions.begin() as session:
        try:
            model_versions.set_shadow(session, _row(session, registry, ref), not off, actor)
        except model_versions.VersionError as exc:
            fail(console, exc)
    console.print(f"{ref} {'is no longer' if off else 'now runs as'} a shadow")


def show(
    key: Annotated[str, typer.Argument(metavar="KEY", help="model key")],
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Versions of a key (live, shadow, retired) with metrics, cards and the labelled-case comparison."""
    from db.model_versions import version_rows
    from training.shadow_compare import compare_versions

    _, sessions, registry = _context(home)
    specs = {s.version: s for s in registry.specs() if s.key == key}
    with sessions() as session:
        rows = [r for r in version_rows(session) if r.model_key == key]
        comparison = compare_versions(session, key)
    versions = []
    for row in rows:
        spec = specs.get(row.version)
        versions.append({
            "version": row.version, "family": row.family, "enabled": row.enabled,
            "shadow": row.shadow, "retired": row.retired, "weights_sha256": row.weights_sha256,
            "metrics": row.metrics,
            "card": str(spec.card_path) if spec is not None else None,
            "in_registry": spec is not None,
        })  # fmt: skip
    if not versions and not specs:
        raise typer.BadParameter(f"model {key!r} is neither in the database nor in the registry")
    data = {"key": key, "versions": versions, "labelled_comparison": comparison}
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    table = Table("version", "state", "AUC", "accuracy", "Dice", "card")
    for v in versions:
        state = (
            "retired"
            if v["retired"]
            else "live"
            if v["enabled"]
            else "shadow"
            if v["shadow"]
            else "off"
        )
        m = v["metrics"]
        table.add_row(v["version"], state, *(f"{m[n]:.3f}" if n in m else "" for n in ("auc", "accuracy", "dice_mean")),
                      v["card"] or "(not in registry)")  # fmt: skip
    console.print(table)
    if comparison:
        console.print_json(json.dumps(comparison, default=str))
    else:
        console.print("no studies with pathology labels have jobs of two versions yet")


def calibrate(
    ref: Annotated[
        str,
        typer.Argument(metavar="REF", help="key@version to re-package (weights unchanged)."),
    ],
    dataset: Annotated[
        Path, typer.Argument(metavar="DATASET", help="Labelled image folder (labels.csv).")
    ],
    version: Annotated[str, typer.Option("--version", help="The new version (e.g. 1.0.1).")],
    operating_point: OperatingPointOption = "youden",
    calibration: CalibrationOption = CalibrationChoice.TEMPERATURE,
    groups: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="JSON with a 'groups' list (as holdout.json): only those groups.",
        ),
    ] = None,
    description: Annotated[
        str, typer.Option(help="What the images are, for the spec and card (default: counted).")
    ] = "",
    out: Annotated[Path, typer.Option("--out", help="Folder for the evaluation it runs.")] = Path(
        "out/calibrate"
    ),
    home: HomeOption = None,
) -> None:
    """Re-package a model version with a calibration and an operating point fitted on a labelled
    image folder the site names, as a NEW version in HOME/models (not live: shadow, evaluate,
    then promote). Fit on cases the model was not trained on, and measure it on others."""
    from inference.registry import RegistryError, site_models_dir
    from training.exclusion import read_excluded_groups
    from training.recalibrate import recalibrate

    check_policy(operating_point)
    settings, _, registry = _context(home)
    if "@" not in ref:
        raise typer.BadParameter(f"{ref!r}: give key@version")
    spec = model_spec(registry, ref, settings.default_model)
    try:
        registry.check_version_free(spec.key, version)
    except RegistryError as exc:
        raise typer.BadParameter(str(exc)) from exc
    named = None
    if groups is not None:
        try:
            named = set(read_excluded_groups([groups]).groups)
        except ValueError as exc:  # not JSON, no 'groups' list
            fail(console, exc)
    try:
        packaged = recalibrate(
            spec, dataset, version, site_models_dir(settings), out,
            calibration=calibration.value, policy=operating_point, groups=named,
            description=description, device=settings.device,
        )  # fmt: skip
    except (OSError, ValueError) as exc:  # exists, no labels.csv, one class only
        fail(console, exc)
    console.print(f"packaged {packaged.ref} into {packaged.folder} (not live)")
    print_operating_point(console, packaged)
    console.print(
        f"next: lnm-node models shadow {packaged.ref}; lnm-node models promote {packaged.ref}"
    )


def register(models_app: typer.Typer) -> None:
    """Add this module's commands to the ``models`` sub-app."""
    models_app.command("show")(show)
    models_app.command("promote")(promote)
    models_app.command("rollback")(rollback)
    models_app.command("retire")(retire)
    models_app.command("shadow")(shadow)
    models_app.command("calibrate")(calibrate)
