"""`lnm-node jobs requeue|cancel|replay`: an operator's hand on jobs, every change audited."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import HomeOption, fail, make_console, settings_or_exit

jobs_app = typer.Typer(help="Requeue, cancel or replay jobs (every change is audited).",
                       no_args_is_help=True)
console = make_console()
ActorOption = Annotated[str, typer.Option("--actor", help="Who does this (kept in the audit).")]
JobIdArgument = Annotated[
    int, typer.Argument(metavar="JOB_ID", help="The job's id (`lnm-node status` lists them).")
]


@jobs_app.command("requeue")
def requeue(job_id: JobIdArgument, home: HomeOption = None, actor: ActorOption = "admin") -> None:
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
        fail(console, f"refused: {exc}")
    console.print(f"job {job_id} requeued as {state.value}")


@jobs_app.command("cancel")
def cancel(job_id: JobIdArgument, home: HomeOption = None, actor: ActorOption = "admin") -> None:
    """Cancel a QUEUED job that no worker holds (it becomes SKIPPED)."""
    from db.jobs_admin import AdminRefused, cancel_job
    from db.models import utcnow
    from db.session import make_sessionmaker

    sessions = make_sessionmaker(settings_or_exit(console, home).database_url)
    try:
        with sessions.begin() as session:
            cancel_job(session, job_id, utcnow(), actor=actor)
    except AdminRefused as exc:
        fail(console, f"refused: {exc}")
    console.print(f"job {job_id} cancelled")


@jobs_app.command("replay")
def replay(
    job_id: JobIdArgument,
    to: Annotated[str | None, typer.Option("--to", help="AE@HOST:PORT or stow+http://...; "
                                           "default: the job's own destinations.")] = None,
    home: HomeOption = None,
    actor: ActorOption = "admin",
) -> None:
    """Send a DELIVERED job's outputs again (same UIDs) to its destinations or to ``--to``.

    Everything is checked first (the job's state, the destinations, the output files: there
    and DICOM), so a refused replay changes nothing."""
    from db.jobs_admin import AdminRefused, job_destinations, prepare_replay, replay_files
    from db.models import DeliveryState
    from pipeline.context import NodeContext
    from pipeline.deliver import deliver_to

    settings = settings_or_exit(console, home)
    ctx = NodeContext.build(settings)
    try:
        with ctx.sessions() as session:
            files = replay_files(session, job_id)
            names = [to] if to else job_destinations(session, job_id) or [str(d) for d in settings.destinations]
        destinations = [settings.destination_named(name) for name in names]
    except (AdminRefused, ValueError) as exc:
        fail(console, f"refused: {exc}")
    if not destinations:
        fail(console, "refused: no destination: give --to")
    paths = [Path(files[role]) for role in sorted(files)]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        fail(console, f"refused: output files are gone: {', '.join(missing)}")
    not_dicom = _not_dicom(paths)
    if not_dicom:
        fail(console, f"refused: output files that are not DICOM: {'; '.join(not_dicom)}")
    failed = 0
    for destination in destinations:
        try:
            with ctx.sessions.begin() as session:
                prepare_replay(session, job_id, str(destination), actor=actor)
        except AdminRefused as exc:  # the job changed since it was checked
            fail(console, f"refused: {exc}")
        state, error = deliver_to(ctx, job_id, destination, paths, actor=actor)
        failed += state != DeliveryState.SENT
        reason = f" ({error})" if error else ""
        console.print(f"job {job_id} -> {destination}: {state.value}{reason}")
    raise typer.Exit(1 if failed else 0)


def _not_dicom(paths: list[Path]) -> list[str]:
    """``PATH (why)`` of each of ``paths`` that is not a DICOM file: the check a send makes
    (``dicom_node.contexts.read_file_uids``), made before a delivery is reset."""
    from dicom_node.contexts import read_file_uids
    from kernel.errors import InvalidInput

    problems = []
    for path in paths:
        try:
            read_file_uids(path)
        except InvalidInput as exc:
            problems.append(f"{path} ({exc})")
    return problems
