"""`lnm-node serve`: SCP, sweeper and a worker process together (the embedded profile)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

from kernel.settings import Settings, settings_environment
from pipeline.celery_app import make_celery
from pipeline.context import NodeContext
from pipeline.registry_sync import sync_registry
from pipeline.sweeper import remove_stale_partials, run_sweeper

log = logging.getLogger(__name__)


def prepare(settings: Settings) -> NodeContext:
    """Migrate the database, clear partial files a crash left in the spool and register the
    shipped models: every entry point starts here."""
    from inference.registry import Registry

    ctx = NodeContext.build(settings, migrate=True)
    remove_stale_partials(ctx.spool)
    registry = Registry.from_settings(settings)
    sync_registry(ctx.sessions, registry, settings.default_model)
    return ctx


def start_worker_process(settings: Settings) -> subprocess.Popen[bytes]:
    """A real worker process with the same settings, through the environment."""
    env = {**os.environ, **settings_environment(settings)}
    return subprocess.Popen([sys.executable, "-m", "cli.main", "worker"], env=env)


def serve(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``), then shut down: SCP first, then worker, sweeper."""
    from dicom_node.scp import receive_into, start_scp

    stop = stop or threading.Event()
    ctx = prepare(settings)
    app = make_celery(settings)
    worker = start_worker_process(settings)
    receive_into(ctx.spool)
    server = start_scp(settings, ctx.spool, ctx.sessions)
    port = server.server_address[1]
    log.info("node serving", extra={"ae_title": settings.ae_title, "port": port, "worker_pid": worker.pid})
    print(f"lnm-node listening: {settings.ae_title}@{settings.bind_address}:{port}", flush=True)

    def _stop(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signum})
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    http = None
    if settings.http_port is not None:
        from web.server import start_http_server

        try:
            http = start_http_server(settings, ctx.sessions, ctx.spool)
        except (OSError, RuntimeError):
            server.shutdown()
            worker.terminate()
            worker.wait(timeout=30)
            raise
        print(f"lnm-node status page: {http.url}", flush=True)
    sweeper = threading.Thread(target=run_sweeper, args=(ctx, app, stop), name="sweeper", daemon=True)
    sweeper.start()
    try:
        while not stop.wait(1.0):
            if worker.poll() is not None:
                log.error("worker exited; restarting it", extra={"returncode": worker.returncode})
                worker = start_worker_process(settings)
    finally:
        server.shutdown()
        if http is not None:
            http.stop()
        sweeper.join(timeout=10)
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.info("node stopped")
