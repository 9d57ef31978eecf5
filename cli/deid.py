"""`lnm-node deidentify IN OUT`: export training data out of the hospital (PS3.15 basic profile)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def deidentify(
    source: Annotated[Path, typer.Argument(exists=True, help="A DICOM file or a folder of them.")],
    out: Annotated[Path, typer.Argument(help="Output folder (OUT/<study>/<sop>.dcm).")],
    uid_secret: Annotated[str | None, typer.Option(
        help="Key of the UID and Patient ID remapping: the same key maps the same UIDs the same "
             "way across runs. Keep it inside the hospital. Default: a new random key.")] = None,
    keep_unmasked: Annotated[bool, typer.Option(
        help="Also write images without an ultrasound tissue region (their burned-in text is "
             "NOT blanked).")] = False,
) -> None:
    """Remove identifying attributes, remap UIDs, blank pixels outside the tissue regions."""
    from deid.files import deidentify_tree
    from kernel.logging_setup import configure_logging

    configure_logging(json_lines=False)
    report = deidentify_tree(source, out, uid_secret or secrets.token_hex(16), keep_unmasked)
    for path in report.withheld:
        console.print(f"[yellow]withheld[/yellow] {path}: no tissue region to blank burned-in text by")
    console.print(f"{len(report.written)} written, {len(report.withheld)} withheld, "
                  f"{len(report.skipped)} skipped")
