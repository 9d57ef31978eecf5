"""`lnm-node deidentify IN OUT`: export training data out of the hospital (PS3.15 basic profile).

The key of the UID remapping is a secret: it is read from ``LNM_DEID_UID_SECRET`` or, with
``--uid-secret-stdin``, from the first line of standard input; never from the command line,
where other users of the machine could read it (``ps``) and shells keep it in their history.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from cli.options import fail, make_console, settings_or_exit
from deid.options import StructuredContent

console = make_console()


def _secret(from_stdin: bool) -> str | None:
    if from_stdin:
        secret = sys.stdin.readline().strip()
        if not secret:
            raise typer.BadParameter("standard input gave no key", param_hint="--uid-secret-stdin")
        return secret
    return settings_or_exit(console, None, make_home=False).deid_uid_secret or None


def deidentify(
    source: Annotated[
        Path,
        typer.Argument(exists=True, metavar="SOURCE", help="A DICOM file or a folder of them."),
    ],
    out: Annotated[
        Path, typer.Argument(metavar="OUT", help="Output folder (OUT/<study>/<sop>.dcm).")
    ],
    uid_secret_stdin: Annotated[bool, typer.Option(
        help="Read the key of the UID and Patient ID remapping from the first line of standard "
             "input (else LNM_DEID_UID_SECRET; else a new random key). The same key maps the "
             "same UIDs the same way across runs. Keep it inside the hospital.")] = False,
    structured_content: Annotated[StructuredContent, typer.Option(
        help="SR content items: 'clean' (PS3.15 Clean Structured Content: text, names, dates "
             "and UIDs replaced, codes and numbers kept) or 'withhold' the file.")]
    = StructuredContent.CLEAN,
    keep_unmasked: Annotated[bool, typer.Option(
        help="Also write images without an ultrasound tissue region (their burned-in text is "
             "NOT blanked).")] = False,
) -> None:
    """Remove identifying attributes, remap UIDs, clean SR content, blank pixels outside the
    tissue regions. Exits 1 when a file failed (the others are written), or when SOURCE is not
    a DICOM file or a folder holding one."""
    from deid.files import deidentify_tree
    from deid.options import DeidOptions
    from kernel.logging_setup import configure_logging

    configure_logging(json_lines=False)
    secret = _secret(uid_secret_stdin)
    if secret is None:
        console.print("no LNM_DEID_UID_SECRET: a new random key; UIDs will not match "
                      "another run's", style="yellow")
    options = DeidOptions(structured_content=structured_content, keep_unmasked=keep_unmasked)
    report = deidentify_tree(source, out, secret or secrets.token_hex(16), options)
    if not (report.written or report.withheld or report.failed):  # nothing was DICOM
        if source.is_file():
            fail(console, f"{source} is not a DICOM file")
        others = f"{len(report.skipped)} other file(s)" if report.skipped else "no file at all"
        fail(console, f"no DICOM file in {source}: {others}")
    for path, reason in report.withheld:
        console.print(Text.assemble(("withheld", "yellow"), f" {path}: {reason}"), soft_wrap=True)
    for path, error in report.failed:
        console.print(Text.assemble(("failed", "red"), f" {path}: {error}"), soft_wrap=True)
    console.print(f"{len(report.written)} written, {len(report.withheld)} withheld, "
                  f"{len(report.skipped)} skipped, {len(report.failed)} failed")
    if report.failed:
        raise typer.Exit(1)
