"""`lnm-node serve`: SCP, sweeper and worker processes together (the embedded profile).

Start-up order: migrate and register models (:func:`prepare`), start the worker processes
(``settings.effective_concurrency()`` of them) and wait until each has warmed its models,
then open the DICOM port and print ``lnm-node ready``: the first study meets a warm worker.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from kernel.settings import Settings, settings_environment
from pipeline.celery_app import make_celery
from pipeline.context import NodeContext
from pipeline.handover import queue_hand_over
from pipeline.registry_sync import sync_registry
from pipeline.sweeper import remove_stale_partials, run_sweeper
from pipeline.worker import ready_marker

log = logging.getLogger(__name__)

#: how long `serve` waits for its workers to warm before it gives up
WARM_TIMEOUT_SECONDS = 600.0


def prepare(settings: Settings) -> NodeContext:
    """Migrate the database, clear partial files a crash left in the spool and register the
    shipped models: every entry point starts here."""
    from inference.registry import Registry

    ctx = NodeContext.build(settings, migrate=True)
    remove_stale_partials(ctx.spool)
    registry = Registry.from_settings(settings)
    sync_registry(ctx.sessions, registry, settings.default_model)
    return ctx


def start_worker_process(settings: Settings, processes: int = 1) -> subprocess.Popen[bytes]:
    """A real worker process with the same settings, through the environment; ``processes``
    is how many share the host's cores."""
    env = {**os.environ, **settings_environment(settings)}
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "worker", "--processes", str(processes)], env=env
    )


class WorkerProcesses:
    """The embedded profile's worker processes: started, awaited warm, restarted, stopped."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.count = settings.effective_concurrency()
        self.processes = [start_worker_process(settings, self.count) for _ in range(self.count)]

    def restart_exited(self) -> None:
        """Replace each worker process that exited."""
        for index, process in enumerate(self.processes):
            if process.poll() is not None:
                log.error("worker exited; restarting it", extra={"returncode": process.returncode})
                self.processes[index] = start_worker_process(self._settings, self.count)

    def wait_warm(self, stop: threading.Event, timeout: float = WARM_TIMEOUT_SECONDS) -> bool:
        """Block until every worker wrote its ready marker (True), or ``stop``/timeout (False)."""
        deadline = time.monotonic() + timeout
        while not stop.wait(0.05):
            self.restart_exited()
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


def serve(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``), then shut down: SCP first, then workers, sweeper."""
    from dicom_node.scp import receive_into, start_scp

    stop = stop or threading.Event()
    ctx = prepare(settings)
    app = make_celery(settings)

    def _stop(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signum})
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    workers = WorkerProcesses(settings)
    started = time.monotonic()
    if not workers.wait_warm(stop):
        workers.stop()
        if stop.is_set():
            return
        raise RuntimeError(f"workers not warm after {WARM_TIMEOUT_SECONDS:.0f} s")
    log.info("workers warm", extra={"workers": workers.count,
                                    "seconds": round(time.monotonic() - started, 2)})
    receive_into(ctx.spool)
    server = start_scp(settings, ctx.spool, ctx.sessions, on_assembled=queue_hand_over(ctx, app))
    port = server.server_address[1]
    log.info("node serving", extra={"ae_title": settings.ae_title, "port": port,
                                    "worker_pids": [p.pid for p in workers.processes]})
    print(f"lnm-node listening: {settings.ae_title}@{settings.bind_address}:{port}", flush=True)
    http = None
    if settings.http_port is not None:
        from web.server import start_http_server

        try:
            http = start_http_server(settings, ctx.sessions, ctx.spool)
        except (OSError, RuntimeError):
            server.shutdown()
            workers.stop()
            raise
        print(f"lnm-node status page: {http.url}", flush=True)
    sweeper = threading.Thread(
        target=run_sweeper, args=(ctx, app, stop), name="sweeper", daemon=True
    )
    sweeper.start()
    print(f"lnm-node ready: {workers.count} worker(s) warm", flush=True)
    log.info("node ready")
    try:
        while not stop.wait(1.0):
            workers.restart_exited()
    finally:
        server.shutdown()
        if http is not None:
            http.stop()
        sweeper.join(timeout=10)
        workers.stop()
        log.info("node stopped")
