"""`lnm-node audit export`: the append-only audit table as JSON lines or CSV."""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from cli.options import HomeOption, make_console, settings_or_exit

audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
console = make_console()
FIELDS = ("id", "at", "actor", "action", "entity", "entity_id", "details")


@audit_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="FILE.jsonl or FILE.csv")],
    since: Annotated[datetime | None, typer.Option(help="Only events at or after (ISO 8601, UTC).")] = None,
    home: HomeOption = None,
) -> None:
    """Write every audit event (oldest first) to ``--out``; the format follows its suffix."""
    from db.jobs_admin import audit_events
    from db.models import utcnow
    from db.session import make_sessionmaker

    if out.suffix not in (".jsonl", ".csv"):
        raise typer.BadParameter("--out must end in .jsonl or .csv")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=utcnow().tzinfo)
    sessions = make_sessionmaker(settings_or_exit(console, home).database_url)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    count = 0
    with sessions() as session, open(partial, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, FIELDS) if out.suffix == ".csv" else None
        if writer is not None:
            writer.writeheader()
        for event in audit_events(session, since):
            if writer is not None:
                writer.writerow({**event, "details": json.dumps(event["details"], sort_keys=True)})
            else:
                stream.write(json.dumps(event, sort_keys=True) + "\n")
            count += 1
        stream.flush()
        os.fsync(stream.fileno())
    partial.replace(out)
    console.print(f"{count} audit events written to {out}")
