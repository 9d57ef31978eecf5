"""`lnm-node jobs requeue|cancel|replay`: an operator's hand on jobs, every change audited."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import HomeOption, make_console, settings_or_exit

jobs_app = typer.Typer(help="Requeue, cancel or replay jobs (every change is audited).",
                       no_args_is_help=True)
console = make_console()
ActorOption = Annotated[str, typer.Option("--actor", help="Who does this (kept in the audit).")]


@jobs_app.command("requeue")
def requeue(job_id: int, home: HomeOption = None, actor: ActorOption = "admin") -> None:
    """Put a FAILED job back in the queue (resumes at delivery when its outputs still exist)."""
    from db.jobs_admin import AdminRefused, requeue_job
    from db.models import Job
    from db.session import make_sessionmaker

    sessions = make_sessionmaker(settings_or_exit(console, home).database_url)
    with sessions() as session:
        job = session.get(Job, job_id)
        files = dict(job.outputs.get("files") or {}) if job is not None else {}
    present = bool(files) and all(Path(path).is_file() for path in files.values())
    try:
        with sessions.begin() as session:
            state = requeue_job(session, job_id, outputs_present=present, actor=actor)
    except AdminRefused as exc:
        console.print(f"refused: {exc}", style="red")
        raise typer.Exit(1) from exc
    console.print(f"job {job_id} requeued as {state.value}")


@jobs_app.command("cancel")
def cancel(job_id: int, home: HomeOption = None, actor: ActorOption = "admin") -> None:
    """Cancel a QUEUED job that no worker holds (it becomes SKIPPED)."""
    from db.jobs_admin import AdminRefused, cancel_job
    from db.models import utcnow
    from db.session import make_sessionmaker

    sessions = make_sessionmaker(settings_or_exit(console, home).database_url)
    try:
        with sessions.begin() as session:
            cancel_job(session, job_id, utcnow(), actor=actor)
    except AdminRefused as exc:
        console.print(f"refused: {exc}", style="red")
        raise typer.Exit(1) from exc
    console.print(f"job {job_id} cancelled")


@jobs_app.command("replay")
def replay(
    job_id: int,
    to: Annotated[str | None, typer.Option("--to", help="AE@HOST:PORT or stow+http://...; "
                                           "default: the job's own destinations.")] = None,
    home: HomeOption = None,
    actor: ActorOption = "admin",
) -> None:
    """Send a DELIVERED job's outputs again (same UIDs) to its destinations or to ``--to``."""
    from db.jobs_admin import AdminRefused, job_destinations, prepare_replay
    from db.models import DeliveryState
    from pipeline.context import NodeContext
    from pipeline.deliver import deliver_to

    settings = settings_or_exit(console, home)
    ctx = NodeContext.build(settings)
    with ctx.sessions() as session:
        names = [to] if to else job_destinations(session, job_id) or [str(d) for d in settings.destinations]
    if not names:
        console.print("refused: no destination: give --to", style="red")
        raise typer.Exit(1)
    failed = 0
    for name in names:
        try:
            destination = settings.destination_named(name)
            with ctx.sessions.begin() as session:
                files = prepare_replay(session, job_id, str(destination), actor=actor)
        except (AdminRefused, ValueError) as exc:
            console.print(f"refused: {exc}", style="red")
            raise typer.Exit(1) from exc
        paths = [Path(files[role]) for role in sorted(files)]
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            console.print(f"refused: output files are gone: {', '.join(missing)}", style="red")
            raise typer.Exit(1)
        state, error = deliver_to(ctx, job_id, destination, paths, actor=actor)
        failed += state != DeliveryState.SENT
        reason = f" ({error})" if error else ""
        console.print(f"job {job_id} -> {destination}: {state.value}{reason}")
    raise typer.Exit(1 if failed else 0)
