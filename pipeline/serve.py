"""`lnm-node serve`: SCP, sweeper and worker processes together (the embedded profile).

Start-up order: migrate and register models (:func:`prepare`), start the worker processes
(``settings.effective_concurrency()`` of them) and wait until each has warmed its models,
then open the DICOM port and print ``lnm-node ready``: the first study meets a warm worker.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from db.session import startup_lock
from inference.device import check_device
from kernel.errors import NodeError
from kernel.settings import Settings, settings_environment
from kernel.spool import lock_file, make_dirs
from pipeline.celery_app import make_celery
from pipeline.context import NodeContext
from pipeline.handover import queue_hand_over
from pipeline.registry_sync import sync_registry
from pipeline.sweeper import remove_stale_partials, run_sweeper
from pipeline.worker import ready_marker

if TYPE_CHECKING:
    from celery import Celery
    from pynetdicom.transport import ThreadedAssociationServer

log = logging.getLogger(__name__)

#: how long `serve` waits for its workers to warm before it gives up
WARM_TIMEOUT_SECONDS = 600.0
#: worker exits per worker process that `serve` tolerates before it is warm
STARTS_BEFORE_WARM = 2
#: the file in HOME/run that one `serve` per home holds locked
SERVE_LOCK = "serve.lock"


def prepare(settings: Settings) -> NodeContext:
    """Migrate the database, clear partial files a crash left in the spool and register the
    shipped models (logging the model folders left out): every entry point starts here."""
    from inference.registry import Registry

    ctx = NodeContext.build(settings, migrate=True)
    remove_stale_partials(ctx.spool)
    registry = Registry.from_settings(settings)
    log.info("models registered", extra={"models": [spec.ref for spec in registry.specs()]})
    for problem in registry.problems():  # the other models still run
        log.error("model folder left out",
                  extra={"folder": str(problem.folder), "reason": problem.reason})
    with startup_lock(settings.database_url):  # processes started together: one at a time
        sync_registry(ctx.sessions, registry, settings.default_model)
    return ctx


def start_worker_process(settings: Settings, processes: int = 1) -> subprocess.Popen[bytes]:
    """A real worker process with the same settings, through the environment; ``processes``
    is how many share the host's cores. It ends when this process ends, even by SIGKILL."""
    env = {**os.environ, **settings_environment(settings)}
    command = [sys.executable, "-m", "cli.main", "worker", "--processes", str(processes)]
    return subprocess.Popen([*command, "--parent-pid", str(os.getpid())], env=env)


class WorkerProcesses:
    """The embedded profile's worker processes: started, awaited warm, restarted, stopped."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.count = settings.effective_concurrency()
        self.processes = [start_worker_process(settings, self.count) for _ in range(self.count)]

    def exited(self) -> list[int]:
        """The indexes of the worker processes that have exited."""
        return [index for index, process in enumerate(self.processes) if process.poll() is not None]

    def restart(self, indexes: list[int]) -> None:
        """Replace the worker processes at ``indexes`` (ones that exited)."""
        for index in indexes:
            returncode = self.processes[index].returncode
            log.error("worker exited; restarting it", extra={"returncode": returncode})
            self.processes[index] = start_worker_process(self._settings, self.count)

    def wait_warm(self, stop: threading.Event, timeout: float = WARM_TIMEOUT_SECONDS) -> bool:
        """Block until every worker wrote its ready marker (True), or ``stop``/timeout (False).

        Raises :class:`CannotServe` when workers keep exiting before they are warm (more than
        :data:`STARTS_BEFORE_WARM` exits per worker: a model that cannot load, a database
        gone): each worker said why in the log before it exited.
        """
        deadline = time.monotonic() + timeout
        exits = 0
        while not stop.wait(0.05):
            exited = self.exited()  # one poll counts and restarts each exit exactly once
            exits += len(exited)
            if exits > STARTS_BEFORE_WARM * self.count:
                raise CannotServe(
                    f"worker processes exited {exits} times before they were warm; "
                    "each one's reason is in the log above"
                )
            self.restart(exited)
            home = self._settings.home
            if all(ready_marker(home, p.pid).exists() for p in self.processes):
                return True
            if time.monotonic() > deadline:
                return False
        return False

    def stop(self) -> None:
        """SIGTERM each (Celery's warm shutdown), kill those still running after 30 s."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            ready_marker(self._settings.home, process.pid).unlink(missing_ok=True)


class CannotServe(NodeError):
    """`serve` (or `scp`) cannot start: its home is served already, a port it needs is taken,
    its DICOM TLS files do not load, or its workers keep exiting, or do not become warm,
    before it opens its port."""


@contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """Hold ``HOME/run/serve.lock`` (``flock``, released when the process ends): one `serve`
    per home, since its workers take jobs from the home's folder queue. Raises
    :class:`CannotServe` naming the process that holds it."""
    path = home / "run" / SERVE_LOCK
    make_dirs(path.parent)
    try:
        descriptor = lock_file(path, wait=False)
    except BlockingIOError:
        holder = path.read_text(errors="replace").strip() or "unknown"
        raise CannotServe(
            f"{home} is served already by another `lnm-node serve` (pid {holder}); "
            "stop it, or give this one another --home"
        ) from None
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)


def check_can_listen(settings: Settings, status_page: bool = False) -> None:
    """Raise :class:`CannotServe`, before any worker starts, when the DICOM port, or with
    ``status_page`` the status page's port (when one is set), cannot be bound (port 0, any
    free port, always can), or when the DICOM TLS certificate, key or CA file does not load."""
    _check_bindable(settings.bind_address, settings.port, "DICOM")
    if status_page and settings.http_port is not None:
        _check_bindable(settings.http_bind_address, settings.http_port, "status page")
    if settings.tls_certificate is not None:
        from dicom_node.tls import server_context

        try:
            server_context(settings)
        except OSError as error:  # ssl.SSLError is one
            files = [settings.tls_certificate, settings.tls_private_key, settings.tls_ca_certificates]
            named = ", ".join(str(f) for f in files if f is not None)
            raise CannotServe(f"DICOM TLS files do not load ({named}): {error}") from error


def _check_bindable(host: str, port: int, what: str) -> None:
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the SCP binds
            probe.bind(address)
    except OSError as error:
        raise cannot_listen(host, port, error, what) from error


def cannot_listen(host: str, port: int, error: OSError, what: str = "DICOM") -> CannotServe:
    """The error of a port (``what``: DICOM, status page) that cannot be bound."""
    hint = "; is another node running there?" if error.errno == errno.EADDRINUSE else ""
    return CannotServe(f"cannot listen on {host}:{port} ({what}): {error.strerror or error}{hint}")


def serve(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``), then shut down: the SCP first, then the status
    page, the sweeper and the workers.

    Raises :class:`CannotServe` before starting anything when the home is served already or
    :func:`check_can_listen` fails, :class:`DeviceUnavailable` when the device is a GPU this
    host cannot use; whatever fails later, the worker processes it started are stopped.
    """
    with home_lock(settings.home):
        check_can_listen(settings, status_page=True)
        check_device(settings.device)
        _serve(settings, stop or threading.Event())


def _serve(settings: Settings, stop: threading.Event) -> None:
    from dicom_node.scp import receive_into, start_scp

    ctx = prepare(settings)
    app = make_celery(settings)

    def _stop(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signum})
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    workers = WorkerProcesses(settings)
    try:
        started = time.monotonic()
        if not workers.wait_warm(stop, WARM_TIMEOUT_SECONDS):
            if stop.is_set():
                return
            raise CannotServe(
                f"workers not warm after {WARM_TIMEOUT_SECONDS:.0f} s; the log above says which "
                "models each one warmed ('model warmed') and which it could not"
            )
        log.info("workers warm", extra={"workers": workers.count,
                                        "seconds": round(time.monotonic() - started, 2)})
        receive_into(ctx.spool)
        try:
            server = start_scp(
                settings, ctx.spool, ctx.sessions, on_assembled=queue_hand_over(ctx, app)
            )
        except OSError as error:
            raise cannot_listen(settings.bind_address, settings.port, error) from error
        _run(settings, ctx, app, server, workers, stop)
    finally:
        workers.stop()
        log.info("node stopped")


def _run(
    settings: Settings,
    ctx: NodeContext,
    app: Celery,
    server: ThreadedAssociationServer,
    workers: WorkerProcesses,
    stop: threading.Event,
) -> None:
    """With the SCP listening: the status page when asked for, the sweeper, then wait for
    ``stop`` while restarting workers that exit; shuts the SCP down first when it ends."""
    http, sweeper = None, None
    try:
        port = server.server_address[1]
        log.info("node serving", extra={"ae_title": settings.ae_title, "port": port,
                                        "worker_pids": [p.pid for p in workers.processes]})
        print(f"lnm-node listening: {settings.ae_title}@{settings.bind_address}:{port}", flush=True)
        if settings.http_port is not None:
            from web.server import start_http_server

            try:
                http = start_http_server(settings, ctx.sessions, ctx.spool)
            except OSError as error:
                raise cannot_listen(
                    settings.http_bind_address, settings.http_port, error, "status page"
                ) from error
            print(f"lnm-node status page: {http.url}", flush=True)
        sweeper = threading.Thread(
            target=run_sweeper, args=(ctx, app, stop), name="sweeper", daemon=True
        )
        sweeper.start()
        print(f"lnm-node ready: {workers.count} worker(s) warm", flush=True)
        log.info("node ready")
        while not stop.wait(1.0):
            workers.restart(workers.exited())
    finally:
        server.shutdown()
        if http is not None:
            http.stop()
        stop.set()
        if sweeper is not None:
            sweeper.join(timeout=10)
