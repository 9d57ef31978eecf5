"""`lnm-node deidentify IN OUT`: export training data out of the hospital (PS3.15 basic profile).

The key of the UID remapping is a secret: it is read from ``LNM_DEID_UID_SECRET``, from the
first line of standard input (``--uid-secret-stdin``) or from a key file kept across batches
(``--key-file``, created 0600 when absent); never from the command line, where other users of
the machine could read it (``ps``) and shells keep it in their history. The key file and the
UID map (``--uid-map``) re-identify the export: neither may sit inside OUT (the map only when
asked, ``--uid-map-in-output``).
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


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _secret(from_stdin: bool, key_file: Path | None, out: Path) -> str | None:
    from deid.sensitive import SensitiveFileError, load_or_create_key

    from_env = settings_or_exit(console, None, make_home=False).deid_uid_secret or None
    if key_file is not None:
        if from_stdin:
            raise typer.BadParameter("give one key: --key-file or --uid-secret-stdin",
                                     param_hint="--key-file")  # fmt: skip
        if from_env:
            raise typer.BadParameter("give one key: LNM_DEID_UID_SECRET is set too",
                                     param_hint="--key-file")  # fmt: skip
        if _inside(key_file, out):
            raise typer.BadParameter("the key file must not be inside OUT (it would be "
                                     "exported with the data it re-identifies)",
                                     param_hint="--key-file")  # fmt: skip
        try:
            key, created = load_or_create_key(key_file)
        except SensitiveFileError as exc:
            raise typer.BadParameter(str(exc), param_hint="--key-file") from exc
        except OSError as exc:
            raise typer.BadParameter(f"{key_file}: {exc.strerror}", param_hint="--key-file") from exc
        if created:
            console.print(f"new key written to {key_file} (0600): keep it inside the hospital, "
                          "and use it for every later batch", style="yellow", soft_wrap=True)  # fmt: skip
        return key
    if from_stdin:
        secret = sys.stdin.readline().strip()
        if not secret:
            raise typer.BadParameter("standard input gave no key", param_hint="--uid-secret-stdin")
        return secret
    return from_env


def _check_uid_map(uid_map: Path | None, out: Path, in_output: bool) -> None:
    if uid_map is None:
        return
    if uid_map.exists():
        raise typer.BadParameter(f"{uid_map} exists: a UID map is never overwritten",
                                 param_hint="--uid-map")  # fmt: skip
    if _inside(uid_map, out) and not in_output:
        raise typer.BadParameter("the UID map is inside OUT, where it would be exported with "
                                 "the data it re-identifies (--uid-map-in-output to allow)",
                                 param_hint="--uid-map")  # fmt: skip


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
             "input (else --key-file or LNM_DEID_UID_SECRET; else a new random key). The same key maps the "
             "same UIDs the same way across runs. Keep it inside the hospital.")] = False,
    key_file: Annotated[Path | None, typer.Option(
        help="Read the key from this file, or create it (a random key, mode 0600) when absent: "
             "the same file gives the same pseudonyms and UIDs in every batch. SENSITIVE: with "
             "it the export can be linked back; keep it inside the hospital, never in OUT.")]
    = None,
    uid_map: Annotated[Path | None, typer.Option(
        help="Also write a CSV of original_uid,deidentified_uid for every UID remapped (mode "
             "0600, never overwritten), to trace an output back to its source. SENSITIVE: it "
             "re-identifies the export; keep it inside the hospital.")] = None,
    uid_map_in_output: Annotated[bool, typer.Option(
        help="Allow --uid-map inside OUT (refused otherwise).")] = False,
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
    from deid.sensitive import SensitiveFileError, write_uid_map
    from kernel.logging_setup import configure_logging

    configure_logging(json_lines=False)
    _check_uid_map(uid_map, out, uid_map_in_output)
    secret = _secret(uid_secret_stdin, key_file, out)
    if secret is None:
        console.print("no LNM_DEID_UID_SECRET or --key-file: a new random key; UIDs and "
                      "pseudonyms will not match another run's", style="yellow")
    options = DeidOptions(structured_content=structured_content, keep_unmasked=keep_unmasked)
    report = deidentify_tree(source, out, secret or secrets.token_hex(16), options)
    if not (report.written or report.withheld or report.failed):  # nothing was DICOM
        if source.is_file():
            fail(console, f"{source} is not a DICOM file")
        others = f"{len(report.skipped)} other file(s)" if report.skipped else "no file at all"
        fail(console, f"no DICOM file in {source}: {others}")
    if uid_map is not None:
        try:
            uid_map.parent.mkdir(parents=True, exist_ok=True)
            write_uid_map(uid_map, report.uid_map)
        except (SensitiveFileError, OSError) as exc:  # the export is written; its map is not
            fail(console, f"UID map not written: {exc}")
        console.print(f"UID map written to {uid_map} (0600): keep it inside the hospital",
                      style="yellow", soft_wrap=True)  # fmt: skip
    for path, reason in report.withheld:
        console.print(Text.assemble(("withheld", "yellow"), f" {path}: {reason}"), soft_wrap=True)
    for path, error in report.failed:
        console.print(Text.assemble(("failed", "red"), f" {path}: {error}"), soft_wrap=True)
    console.print(f"{len(report.written)} written, {len(report.withheld)} withheld, "
                  f"{len(report.skipped)} skipped, {len(report.failed)} failed")
    if report.failed:
        raise typer.Exit(1)
