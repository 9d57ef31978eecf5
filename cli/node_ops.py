"""`lnm-node check` and `lnm-node backup`: does the database agree with the spool, and a
consistent copy of an embedded node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from cli.options import HomeOption, fail, make_console, settings_or_exit
from kernel.settings import Settings

console = make_console()


def _existing_home(home: Path | None) -> Settings:
    """Settings of an existing home, nothing made on disk; a home that does not exist is a
    usage error."""
    settings = settings_or_exit(console, home, make_home=False)
    if not settings.home.is_dir():
        raise typer.BadParameter(f"{settings.home} does not exist", param_hint="--home")
    return settings


def check(
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Check, read-only, that the database and the spool agree (safe on a live node): rows
    whose file is missing or of another size, files without a row, quarantine files without
    their record, job folders without a job, pending deliveries whose outputs are gone,
    leftover partial files. Exit 0: consistent; 1: problems found."""
    from db.session import read_only_sessionmaker
    from ops.check import DESCRIPTIONS, UnreadableDatabase, check_node

    settings = _existing_home(home)
    sessions = read_only_sessionmaker(settings.database_url)
    try:
        report = check_node(settings, sessions)
    except UnreadableDatabase as exc:
        fail(console, f"cannot check {settings.home}: {exc}")
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        raise typer.Exit(0 if report.consistent else 1)
    counts = report.counts
    console.print(f"schema revision {report.revision} (this node: {report.head}); "
                  f"{counts['instance_rows']} instance rows, {counts['incoming_files']} received "
                  f"files, {counts['expired']} rows of expired studies (files gone by retention), "
                  f"{counts['in_flight']} files still being received")  # fmt: skip
    if report.consistent:
        console.print("consistent: the database and the spool agree", style="green")
        return
    table = Table("problem", "count", "examples")
    table.columns[2].overflow = "fold"  # whole paths and UIDs, never cut
    for kind, finding in report.findings.items():
        if finding.count:
            table.add_row(DESCRIPTIONS[kind], str(finding.count), "\n".join(finding.examples))
    console.print(table)
    console.print(Text(f"{report.problems} problem(s) found", style="red"))
    raise typer.Exit(1)


def backup(
    out: Annotated[Path, typer.Option("--out", help="An empty or new folder outside the home.")],
    home: HomeOption = None,
) -> None:
    """Back up an embedded node (SQLite): the database with SQLite's online backup API, then
    the spool (hard links where possible), then the site's models, with backup.json. Safe while
    the node runs. PostgreSQL: use pg_dump (README, "Backup and restore")."""
    from ops.backup import BackupRefused, back_up, check_target, sqlite_path

    settings = _existing_home(home)
    try:
        sqlite_path(settings)
    except BackupRefused as exc:
        fail(console, f"refused: {exc}")
    try:
        check_target(out, settings.home)
    except BackupRefused as exc:
        raise typer.BadParameter(str(exc), param_hint="--out") from exc
    try:
        manifest = back_up(settings, out)
    except BackupRefused as exc:
        fail(console, f"refused: {exc}")
    files = sum(area["files"] for area in manifest.spool.values())
    console.print(f"backed up {settings.home} into {out}: database at schema revision "
                  f"{manifest.schema_revision} ({manifest.rows['instances']} instances, "
                  f"{manifest.rows['jobs']} jobs), {files} spool files, "
                  f"{manifest.models['files']} model files; see {out / 'backup.json'}")  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add `check` and `backup` to ``app``."""
    app.command("check")(check)
    app.command("backup")(backup)
