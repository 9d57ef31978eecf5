"""Options and settings loading shared by the operator sub-commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from kernel.settings import Settings, load_settings

HomeOption = Annotated[Path | None, typer.Option("--home", help="Folder for spool, database and queue.")]


def settings_or_exit(console: Console, home: Path | None) -> Settings:
    """Settings from the environment and ``--home``; exit 2 naming the problem when invalid."""
    try:
        return load_settings(home=home)
    except ValueError as exc:
        console.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc
