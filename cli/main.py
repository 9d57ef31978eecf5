"""`lnm-node`: run the node, look at it, send to it, evaluate its models."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from cli.admin import register as register_admin
from cli.audit import audit_app
from cli.deid import deidentify
from cli.jobs import jobs_app
from cli.node_ops import register as register_node_ops
from cli.options import HomeOption, fail, make_console, model_spec, settings_or_exit
from cli.phantom import phantom, wrap
from cli.scope import register as register_scope
from cli.ssl import pretrain_ssl
from kernel.errors import (
    BrokerUnavailable,
    DatabaseUnavailable,
    DatasetError,
    DeviceUnavailable,
    TransientError,
)
from kernel.logging_setup import configure_logging
from kernel.settings import Destination, Settings

app = typer.Typer(help="DICOM AI node for ultrasound lymph-node assessment (research use only).",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(jobs_app, name="jobs")
app.add_typer(audit_app, name="audit")
app.command("deidentify")(deidentify)
app.command("phantom")(phantom)
app.command("wrap")(wrap)
app.command("pretrain-ssl")(pretrain_ssl)
register_scope(app)
register_node_ops(app)  # check, backup
register_admin(app, models_app)  # labels, dataset, train, compare, cv-summary, models show|promote|...
console = make_console()


def _settings(home: Path | None, **overrides: object) -> Settings:
    return settings_or_exit(console, home, **overrides)


def _print_settings(settings: Settings) -> None:
    console.print_json(json.dumps(settings.redacted()))


@contextmanager
def _exit_when_cannot_serve() -> Iterator[None]:
    """Turn ``CannotServe`` (home served already, port taken, TLS files that do not load,
    workers that exit before warm or are not warm in time) into one line and exit 1."""
    from pipeline.serve import CannotServe

    try:
        yield
    except CannotServe as exc:
        fail(console, f"cannot serve: {exc}")


@app.command()
def serve(
    home: HomeOption = None,
    ae_title: Annotated[str | None, typer.Option(help="Our AE title.")] = None,
    port: Annotated[int | None, typer.Option(help="DICOM port (0: any free port).")] = None,
    bind: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    pacs: Annotated[list[str] | None, typer.Option(help="Destination AE@HOST:PORT (repeatable).")] = None,
    quiet_seconds: Annotated[float | None, typer.Option(help="Study complete after this quiet time.")] = None,
    http_port: Annotated[int | None, typer.Option(help="Serve the status page and /metrics on this port.")] = None,
) -> None:
    """Run SCP, sweeper and worker together until SIGTERM."""
    from pipeline.serve import serve as run

    configure_logging()
    settings = _settings(home, ae_title=ae_title, port=port, bind_address=bind,
                         destinations=list(pacs) if pacs else None,
                         quiet_seconds=quiet_seconds, http_port=http_port)
    _print_settings(settings)
    with _exit_when_cannot_serve():
        run(settings)


@app.command("web-user")
def web_user(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="User name (letters, digits, . _ -).")
    ],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input.")] = False,
) -> None:
    """Print a status-page user entry NAME:HASH for LNM_WEB_USERS (only the hash is kept)."""
    import re
    import sys

    from web.passwords import hash_password

    if not re.match(r"^[A-Za-z0-9._-]{1,64}$", name):
        raise typer.BadParameter("the name may hold letters, digits, '.', '_' and '-' (1-64)")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    if len(password) < 8:
        raise typer.BadParameter("the password needs at least 8 characters")
    print(f"{name}:{hash_password(password)}")


@app.command()
def scp(home: HomeOption = None, port: Annotated[int | None, typer.Option()] = None) -> None:
    """Run only the Storage SCP (production: one process per host)."""
    import threading

    from dicom_node.scp import receive_into, start_scp
    from pipeline.celery_app import check_broker, make_celery
    from pipeline.handover import queue_hand_over
    from pipeline.serve import check_can_listen, prepare

    configure_logging()
    settings = _settings(home, port=port)
    _print_settings(settings)
    with _exit_when_cannot_serve():
        check_can_listen(settings)
    check_broker(settings)
    ctx = prepare(settings)
    receive_into(ctx.spool)
    server = start_scp(settings, ctx.spool, ctx.sessions,
                       on_assembled=queue_hand_over(ctx, make_celery(settings)))
    stop = threading.Event()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()


@app.command()
def worker(
    home: HomeOption = None,
    concurrency: Annotated[int | None, typer.Option()] = None,
    queues: Annotated[str | None, typer.Option(help="Comma-separated queues (default: all).")] = None,
    processes: Annotated[int, typer.Option(help="Worker processes sharing this host's cores.", hidden=True)] = 1,
    parent_pid: Annotated[int | None, typer.Option(help="Stop when this process (serve) ends.", hidden=True)] = None,
) -> None:
    """Run a Celery worker for the node's jobs (warmed: it takes jobs once its models ran once)."""
    from pipeline.worker import end_with_parent, run_worker

    configure_logging()
    if parent_pid is not None:
        end_with_parent(parent_pid)
    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    run_worker(_settings(home), concurrency, names, processes=processes)


@app.command()
def beat(home: HomeOption = None) -> None:
    """Run the sweeper (study assembly and queue repair) until SIGTERM."""
    import signal
    import threading

    from pipeline.celery_app import check_broker, make_celery
    from pipeline.serve import prepare
    from pipeline.sweeper import run_sweeper

    configure_logging()
    settings = _settings(home)
    check_broker(settings)
    ctx = prepare(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run_sweeper(ctx, make_celery(settings), stop)


@app.command()
def status(home: HomeOption = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Studies, jobs and deliveries by state, and the recent jobs (the status page's numbers)."""
    from dataclasses import asdict

    from db import views
    from db.models import Delivery, Job, Study
    from db.session import make_sessionmaker
    from kernel.spool import Spool

    settings = _settings(home)
    sessions = make_sessionmaker(settings.database_url)
    with sessions() as session:
        counts = {name: {state: n for state, n in views.states(session, model).items() if n}
                  for name, model in (("studies", Study), ("jobs", Job), ("deliveries", Delivery))}
        counts["instances"] = {"RECEIVED": views.instance_count(session)}
        rows = views.job_rows(session, limit=50)
        studies = views.study_scope_rows(session, limit=50)
    quarantined = Spool.under(settings.home).quarantine_count()
    if quarantined:  # refused or conflicting instances: the status page's Errors page lists them
        counts["instances"]["QUARANTINED"] = quarantined
    if as_json:
        print(json.dumps({"counts": counts, "jobs": [asdict(row) for row in rows], "studies": studies},
                         indent=2, default=str))
        return
    for name, by_state in counts.items():
        tally = ", ".join(f"{k} {v}" for k, v in by_state.items()) or "none"
        console.print(Text.assemble((name, "bold"), f": {tally}"))
    table = Table("job", "study", "model", "state", "probability", "deliveries")
    for row in rows:
        table.add_row(str(row.job_id), row.study_instance_uid, row.model, row.state,
                      "" if row.probability is None else f"{row.probability:.3f}",
                      ", ".join(f"{d.destination} {d.state}" for d in row.deliveries))
    console.print(table)
    for study in studies:
        for verdict in study["scope"]:
            if not verdict["run"]:
                console.print(f"study {study['study_instance_uid']}: no job of {verdict['model']}: "
                              f"{verdict['reason']} (rule {verdict['rule']})")


def _print_json_array(items: Iterator[object]) -> None:
    """Print ``items`` as ``json.dumps(list(items), indent=2, default=str)`` would, one item at
    a time (nothing held but the current item)."""
    first = True
    for item in items:
        sys.stdout.write("[\n" if first else ",\n")
        sys.stdout.write(textwrap.indent(json.dumps(item, indent=2, default=str), "  "))
        first = False
    sys.stdout.write("[]\n" if first else "\n]\n")


@app.command()
def instances(home: HomeOption = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every received SOP Instance UID with its study UID and state."""
    from db.session import make_sessionmaker
    from db.views import iter_instance_rows

    settings = _settings(home)
    with make_sessionmaker(settings.database_url)() as session:
        if as_json:  # streamed: a year of history is hundreds of thousands of rows
            _print_json_array(iter_instance_rows(session))
            return
        rows = list(iter_instance_rows(session))
    table = Table("SOP Instance UID", "Study Instance UID", "state")
    for row in rows:
        table.add_row(str(row["sop_instance_uid"]), str(row["study_instance_uid"]), str(row["state"]))
    console.print(table)


@app.command()
def send(
    paths: Annotated[list[Path], typer.Argument(metavar="PATHS", help="DICOM files or folders.")],
    to: Annotated[str, typer.Option("--to", help="AE@HOST:PORT, or AE@HOST:PORT+tls for DICOM TLS.")],
    calling_ae: Annotated[str, typer.Option(help="Our calling AE title.")] = "LNMSEND",
    ca: Annotated[
        Path | None, typer.Option(help="PEM CA certificates the peer's certificate must chain to (TLS; default: the system's).")
    ] = None,
    cert: Annotated[Path | None, typer.Option(help="Our PEM client certificate (TLS).")] = None,
    key: Annotated[Path | None, typer.Option(help="The PEM private key of --cert (TLS).")] = None,
) -> None:
    """Send DICOM files to a peer with C-STORE (a modality's role, for tests and demos)."""
    from dicom_node.send import send_paths
    from dicom_node.tls import client_context_for

    configure_logging(json_lines=False)
    try:
        destination = Destination.parse(to)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--to") from exc
    if (ca or cert or key) and not destination.tls:
        raise typer.BadParameter("--ca, --cert and --key need a DICOM TLS peer: AE@HOST:PORT+tls")
    if (cert is None) != (key is None):
        raise typer.BadParameter("--cert and --key go together")
    settings = settings_or_exit(console, None, make_home=False, tls_ca_certificates=ca,
                                tls_certificate=cert, tls_private_key=key)  # fmt: skip
    try:
        report = send_paths(
            destination, paths, calling_ae, tls=client_context_for(settings, destination)
        )
    except (TransientError, OSError) as exc:  # refused or lost association, unreadable PEM
        fail(console, f"not sent: {exc}")
    for result in report.results:
        mark = ("ok", "green") if result.ok else ("failed", "red")
        console.print(Text.assemble(mark, f" {result.describe()}"), highlight=False, soft_wrap=True)
    console.print(f"{report.sent} sent, {len(report.failed)} failed")
    raise typer.Exit(1 if report.failed else 0)


@app.command()
def evaluate(
    model_ref: Annotated[
        str, typer.Argument(metavar="MODEL_REF", help="key, key@version or 'default'.")
    ],
    dataset: Annotated[
        Path,
        typer.Argument(
            metavar="DATASET", help="Image folder with labels.csv, or a study-level dataset."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    subset: Annotated[str | None, typer.Option(help="'holdout': only the model's held-out groups.")] = None,
    gate: Annotated[bool, typer.Option("--gate/--no-gate", help="Apply the model's out-of-domain gate.")] = True,
    tta: Annotated[str | None, typer.Option(help="Test-time augmentation for this evaluation only: 'none' or 'hflip' (default: the spec's).")] = None,
    home: HomeOption = None,
) -> None:
    """Run a registered model on an image folder or a study-level dataset (each study through
    the node's inference path); write metrics.json, cases.csv, plots and report.html.

    The model's out-of-domain gate declines images as the node does (``--no-gate``: none);
    the figures are of the images it accepts, and the count it declined is printed. ``--tta``
    measures with or without test-time augmentation; the registered spec is unchanged.
    """
    from inference.registry import Registry
    from inference.selection import CeusRule
    from inference.tta import parse_tta, spec_with_tta
    from kernel.errors import DatasetError
    from training.evaluate import evaluate as run_evaluation
    from training.evaluate import evaluate_studies
    from training.study_dataset import is_study_dataset

    configure_logging(json_lines=False)
    settings = _settings(home)
    registry = Registry.from_settings(settings)
    spec = model_spec(registry, model_ref, settings.default_model)
    if tta is not None:
        try:
            spec = spec_with_tta(spec, parse_tta(tta))
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    if is_study_dataset(dataset):
        if subset is not None:
            raise typer.BadParameter("--subset applies to image folders")
        try:
            metrics = evaluate_studies(spec, dataset, out, settings.device, CeusRule.from_settings(settings))
        except ValueError as exc:  # files changed since the dataset was built
            fail(console, exc)
        console.print_json(json.dumps(metrics, default=str))
        return
    groups = None
    if subset == "holdout":
        from training.exclusion import model_holdout

        groups = set(model_holdout(spec.weights_path.parent).groups)
    elif subset is not None:
        raise typer.BadParameter("subset must be 'holdout'")
    try:
        metrics = run_evaluation(spec, dataset, out, subset_groups=groups, device=settings.device, gate=gate)
    except DatasetError:
        raise  # the folder itself is unusable: reported as every command reports it
    except ValueError as exc:  # nothing to evaluate (no rows, none of the subset, all declined)
        fail(console, exc)
    console.print_json(json.dumps(metrics, default=str))
    console.print(f"declined by the out-of-domain gate: {metrics['n_declined_out_of_domain']} image(s)")


@app.command()
def networks(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every trainable network: name (the spec's architecture), family, inputs and backbones."""
    from training.networks import NETWORKS

    rows = [network.row() for network in NETWORKS]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "family", "inputs", "backbones (default first)", "what")
    for row in rows:
        others = [b for b in row["backbones"] if b != row["default_backbone"]]  # type: ignore[union-attr]
        table.add_row(str(row["name"]), str(row["family"]), ", ".join(row["inputs"]),  # type: ignore[arg-type]
                      ", ".join([str(row["default_backbone"]), *others]), str(row["description"]))
    console.print(table)


def _print_left_out(registry) -> list:  # type: ignore[no-untyped-def]
    """Print each models folder the registry left out, with why; returns them."""
    problems = registry.problems()
    for problem in problems:
        console.print(f"left out {problem.folder}: {problem.reason}", style="red")
    return problems


@models_app.command("list")
def models_list(home: HomeOption = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Registered models: key, version, family, backbone, inputs and outputs; then the folders
    left out (a spec that does not load, a version packaged twice) with why."""
    from inference.registry import Registry

    settings = _settings(home)
    registry = Registry.from_settings(settings)
    rows = [spec.model_dump(mode="json") for spec in registry.specs()]
    if as_json:
        print(json.dumps(rows, indent=2))
        for problem in registry.problems():
            print(f"left out {problem.folder}: {problem.reason}", file=sys.stderr)
        return
    table = Table("key", "version", "family", "backbone", "name")
    for row in rows:
        table.add_row(row["key"], row["version"], row["family"], str(row.get("backbone")), row["name"])
    console.print(table)
    _print_left_out(registry)


@models_app.command("verify")
def models_verify(home: HomeOption = None) -> None:
    """Build every registered model, run a forward pass and Grad-CAM on the configured device;
    a models folder left out of the registry fails it too."""
    from inference.registry import Registry
    from inference.verify import verify_models

    settings = _settings(home)
    registry = Registry.from_settings(settings)
    results = verify_models(registry, settings.device)
    table = Table("model", "ok", "forward s", "Grad-CAM s", "error")
    for result in results:
        table.add_row(result.ref, "yes" if result.ok else Text("no", style="red"),
                      f"{result.forward_seconds:.2f}", f"{result.gradcam_seconds:.2f}", result.error or "")
    console.print(table)
    problems = _print_left_out(registry)
    if not results or problems or not all(result.ok for result in results):
        fail(console, "verification failed" if results else "no registered models")


def main() -> None:
    """The ``lnm-node`` command: :data:`app`, with what the operator must fix told in one line
    and exit 1: a dataset a command cannot use (``DatasetError``: no labels.csv, a bad label, a
    missing pack), a packaged model that is unusable (``RegistryError``: registered twice, a
    spec that does not load; a reference that names no model is a usage error, exit 2:
    ``cli.options.model_spec``), a database or broker it cannot reach (``DatabaseUnavailable``,
    ``BrokerUnavailable``), a GPU this host
    cannot use (``DeviceUnavailable``), or a file or folder it cannot read or write
    (``OSError``)."""
    from inference.registry import RegistryError

    try:
        app()
    except DatasetError as exc:
        console.print(f"cannot use the dataset: {exc}", style="red", soft_wrap=True)
        raise SystemExit(1) from exc
    except (RegistryError, DatabaseUnavailable, BrokerUnavailable, DeviceUnavailable) as exc:
        console.print(str(exc), style="red", soft_wrap=True)
        raise SystemExit(1) from exc
    except OSError as exc:  # a file or folder named on the command line: missing, unreadable
        console.print(str(exc), style="red", soft_wrap=True)
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
