"""`lnm-node phantom OUT --studies N`: write synthetic lymph-node studies for demos and tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated

import typer

from cli.options import make_console

console = make_console()
TRUTH_FILE = ".truth.json"
"""Ground truth beside each study; hidden, so ``lnm-node send OUT`` does not send it."""


def _body_part(value: str | None) -> str | None:
    """--body-part, checked before anything is written (``phantom.header.body_part_name``)."""
    from phantom.header import body_part_name

    if value is not None:
        try:
            body_part_name(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    return value


def phantom(
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write the studies into.")],
    studies: Annotated[int, typer.Option("--studies", min=1, help="How many studies.")] = 4,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the first study.")] = 0,
    doppler: Annotated[bool, typer.Option("--doppler/--no-doppler")] = True,
    cine: Annotated[bool, typer.Option("--cine/--no-cine")] = True,
    ceus: Annotated[bool, typer.Option("--ceus/--no-ceus")] = True,
    ambiguous: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Fraction of studies whose B-mode alone is ambiguous."),
    ] = 0.5,
    pathology_csv: Annotated[
        Path | None,
        typer.Option(help="Also write the studies' pathology here (`labels import` format)."),
    ] = None,
    body_part: Annotated[
        str | None,
        typer.Option(
            "--body-part",
            callback=_body_part,
            help="BodyPartExamined and description of every instance, e.g. NECK, AXILLA, BREAST.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the ground truth as JSON.")
    ] = False,
) -> None:
    """Write N synthetic studies (B-mode, colour Doppler, cine, CEUS), benign and malignant in turn.

    Every instance is labelled synthetic (PatientName SYNTHETIC^PHANTOM) and described as a lymph
    node of the neck, or with ``--body-part`` as that body part (what routing rules read). Study k
    is ``OUT/study-<seed+k>/`` with its ground truth in ``.truth.json``. In about --ambiguous of
    the studies the B-mode image does not tell benign from malignant; Doppler, cine and CEUS do.
    """
    from phantom.node import is_ambiguous
    from phantom.study import write_phantom_study

    if pathology_csv is not None:
        _check_label_path(pathology_csv, out)
    rows = []
    for index in range(studies):
        study_seed = seed + index
        folder = out / f"study-{study_seed:04d}"
        paths, truth = write_phantom_study(
            folder,
            study_seed,
            malignant=index % 2 == 1,
            with_doppler=doppler,
            with_cine=cine,
            with_ceus=ceus,
            ambiguous=is_ambiguous(study_seed, ambiguous),
            body_part=body_part,
        )
        (folder / TRUTH_FILE).write_text(truth.to_json() + "\n")
        rows.append({"folder": str(folder), "files": len(paths), **json.loads(truth.to_json())})
        if not as_json:
            console.print(
                f"{folder}: {len(paths)} file(s), {'malignant' if truth.malignant else 'benign'}, "
                f"long {truth.long_axis_mm:.1f} mm, short {truth.short_axis_mm:.1f} mm, "
                f"S/L {truth.short_to_long_ratio:.2f}"
            )
    if pathology_csv is not None:
        write_pathology_csv(pathology_csv, rows)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        console.print(f"{studies} synthetic stud{'y' if studies == 1 else 'ies'} in {out}")
        if pathology_csv is not None:
            console.print(f"pathology of each study in {pathology_csv} (lnm-node labels import)")


def _check_label_path(path: Path, out: Path) -> None:
    """A pathology CSV goes beside the studies, never among them (``send OUT`` would try it)."""
    if path.name == "labels.csv":
        raise typer.BadParameter("labels.csv names the image-folder format; choose another name")
    if path.absolute().is_relative_to(out.absolute()):
        raise typer.BadParameter(f"{path} is inside {out}: write it beside the studies")


def write_pathology_csv(path: Path, rows: list[dict]) -> None:
    """The studies' outcomes in the format ``lnm-node labels import`` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["study_instance_uid", "outcome", "node_station", "date"])
        for row in rows:
            outcome = "metastatic" if row["malignant"] else "benign"
            writer.writerow([row["study_instance_uid"], outcome, "", ""])


def wrap(
    images: Annotated[
        list[Path],
        typer.Argument(
            metavar="IMAGES",
            exists=True,
            dir_okay=False,
            help="Image files (PNG), e.g. busi-dev images.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder to write one study per image into.")],
    body_part: Annotated[
        str,
        typer.Option(
            "--body-part",
            callback=_body_part,
            help="BodyPartExamined and description, e.g. BREAST.",
        ),
    ],
) -> None:
    """Wrap image files as one-instance ultrasound studies labelled with a body part (demos,
    parity checks: the node sees the pixels ``lnm-node evaluate`` reads)."""
    from phantom.wrap import wrap_image

    for index, image in enumerate(images):
        path = wrap_image(image, out / f"study-{index:04d}", body_part, f"{image.stem}-{index}")
        console.print(f"{image} -> {path}", highlight=False, soft_wrap=True)
