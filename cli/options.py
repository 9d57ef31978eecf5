"""Options and settings loading shared by the operator sub-commands."""

from __future__ import annotations

import itertools
from collections.abc import Collection
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from inference.registry import BadReference, ModelSpec, NotRegistered, Registry, parse_policy
from kernel.settings import Settings, load_settings

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Folder for spool, database and queue.")
]


def make_console() -> Console:
    """The CLI's console. Its text is never read as rich markup: paths, errors, scope rules and a
    peer's reasons hold brackets (``[a-z]``, ``[/x]``) that markup would drop or fail on; colour
    comes from ``style=`` and :class:`rich.text.Text` instead."""
    return Console(markup=False)


def model_spec(registry: Registry, ref: str, default_key: str) -> ModelSpec:
    """The spec ``ref`` names (``Registry.get``); a reference that is malformed or names no
    registered model is a usage error.

    The CLI's exit statuses: 2, a usage error, what the user typed names nothing or is not
    allowed (a flag value out of range, a model reference or key that is not registered, a
    path argument that does not exist), raised as ``typer.BadParameter`` (or by typer's own
    checks: ``min=``, ``exists=True``); 1, an operational failure, what was named cannot be
    used or done (a dataset it cannot use, ``DatasetError``; a packaged model that is
    unusable; a refused state change; a database that cannot be reached), in one line
    (:func:`fail`, ``cli.main.main``).
    """
    try:
        return registry.get(ref, default_key)
    except (NotRegistered, BadReference) as exc:
        raise typer.BadParameter(str(exc)) from exc


def fail(console: Console, message: object, code: int = 1) -> NoReturn:
    """Print ``message`` as one red line and exit ``code`` (1: an operational failure; the
    CLI's exit statuses are those of :func:`model_spec`)."""
    console.print(str(message), style="red", soft_wrap=True)
    raise typer.Exit(code)


def settings_or_exit(
    console: Console, home: Path | None, *, make_home: bool = True, **overrides: object
) -> Settings:
    """Settings from the environment, ``--home`` and the command's flags (``overrides``); exit 2
    naming the problem when they are invalid (one line per setting, :func:`settings_problems`)
    or the home cannot be made or written. Without ``make_home`` nothing is made on disk (a
    command that only reads a setting or two)."""
    try:
        if not make_home:
            given = {"home": home, **overrides}
            return Settings(**{name: value for name, value in given.items() if value is not None})
        return load_settings(home=home, **overrides)
    except ValidationError as exc:
        for line in settings_problems(exc, [k for k, v in overrides.items() if v is not None]):
            console.print(line, style="red", soft_wrap=True)
        raise typer.Exit(2) from exc
    except ValueError as exc:
        fail(console, f"invalid settings: {exc}", 2)
    except OSError as exc:
        fail(console, f"cannot use the home folder: {exc}", 2)


def settings_problems(error: ValidationError, flags: Collection[str] = ()) -> list[str]:
    """One line per invalid setting: its environment variable (``LNM_...``), whether a flag of
    the command gave it (``flags``: the settings' field names), and the problem; never the
    value, which may be a password or a key."""
    lines = []
    for problem in error.errors():
        path = list(itertools.takewhile(lambda part: isinstance(part, str), problem["loc"]))
        message = problem["msg"].removeprefix("Value error, ")
        if not path:  # a check of several settings together: the message names them
            lines.append(f"invalid settings: {message}")
            continue
        given = " (given on the command line)" if path[0] in flags else ""
        lines.append(f"invalid setting LNM_{'__'.join(path).upper()}{given}: {message}")
    return lines


class CalibrationChoice(StrEnum):
    """--calibration values (``inference.registry.CalibrationMethod``)."""

    NONE = "none"
    TEMPERATURE = "temperature"
    ISOTONIC = "isotonic"


OperatingPointOption = Annotated[
    str,
    typer.Option(
        "--operating-point",
        help="Threshold policy on the validation cases' (calibrated) probabilities: youden, "
        "sensitivity=0.90 or specificity=0.90.",
    ),
]
CalibrationOption = Annotated[
    CalibrationChoice,
    typer.Option("--calibration", help="Probability calibration fitted on the validation cases."),
]


def check_policy(policy: str) -> None:
    """Raise ``typer.BadParameter`` unless ``policy`` is a valid --operating-point."""
    try:
        parse_policy(policy)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--operating-point") from exc


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_operating_point(console: Console, spec: ModelSpec) -> None:
    """One line each on a packaged spec's calibration and operating point."""
    calibration, point = spec.calibration, spec.operating_point
    if calibration is not None:
        f = calibration.figures
        console.print(
            f"calibration: {calibration.method.value} on {calibration.fitted_on}; ECE "
            f"{_cell(f.get('ece_before'))} -> {_cell(f.get('ece_after'))}, Brier "
            f"{_cell(f.get('brier_before'))} -> {_cell(f.get('brier_after'))}"
        )
    if point is not None:
        f = point.figures
        console.print(
            f"operating point: {point.policy}, threshold {spec.threshold:.3f} (sensitivity "
            f"{_cell(f.get('sensitivity'))}, specificity {_cell(f.get('specificity'))} on "
            f"{point.chosen_on})"
        )
