"""The Celery application: built from settings, tasks are thin and carry job ids only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from celery import Celery
from kombu import Queue

from kernel.errors import BrokerUnavailable
from kernel.settings import Settings
from kernel.spool import make_dirs
from pipeline import folder_queue
from pipeline.context import NodeContext
from pipeline.routing import known_queues

PROCESS_JOB = "lnm.process_job"
#: how often a worker looks into the embedded profile's folder queue (seconds)
FOLDER_POLL_SECONDS = 0.05
#: the default queue name (``Settings.default_queue``); ``queue_routes`` adds others
QUEUE = "lnm"


def broker_options(settings: Settings) -> dict[str, object]:
    """Transport options: a folder queue for the embedded profile, visibility timeout for Redis."""
    if settings.broker_url.startswith("filesystem://"):
        folder = Path(settings.home) / "queue"
        for sub in ("messages", "processed", "control", "staging"):
            make_dirs(folder / sub)  # 0700: messages name jobs of patients' studies
        return {
            "staging_folder": str(folder / "staging"),
            "data_folder_in": str(folder / "messages"),
            "data_folder_out": str(folder / "messages"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": FOLDER_POLL_SECONDS,
        }
    return {"visibility_timeout": settings.redis_visibility_timeout_seconds}


def check_broker(settings: Settings, timeout: float = 5.0) -> None:
    """Connect once to the broker of ``settings`` (a production process checks this when it
    starts, as it checks the database); raises :class:`kernel.errors.BrokerUnavailable` naming
    the broker without its password. The embedded folder queue needs no check."""
    if settings.broker_url.startswith("filesystem://"):
        return
    connection = make_celery(settings).connection_for_write()
    try:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    except Exception as exc:
        raise BrokerUnavailable(
            f"cannot reach the broker {connection.as_uri()}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        connection.release()


def make_celery(settings: Settings, context: Callable[[], NodeContext] | None = None) -> Celery:
    """A Celery app for ``settings`` with the node's tasks registered.

    ``context`` gives the process's :class:`NodeContext` (a worker passes the one it warmed);
    by default one is built on the first task.
    """
    broker = settings.broker_url
    if broker.startswith("filesystem://"):  # atomic messages (pipeline.folder_queue)
        broker = broker.replace("filesystem://", f"{folder_queue.SCHEME}://", 1)
    app = Celery("lnm_node", broker=broker, set_as_current=False)
    app.conf.update(
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.default_queue,
        task_queues=[Queue(name) for name in known_queues(settings)],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit_seconds,
        task_soft_time_limit=max(5, settings.task_time_limit_seconds - 30),
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    holder: dict[str, NodeContext] = {}

    def built() -> NodeContext:
        if "ctx" not in holder:
            holder["ctx"] = NodeContext.build(settings, migrate=False)
        return holder["ctx"]

    context = context or built

    @app.task(name=PROCESS_JOB, bind=True, acks_late=True)
    def process_job_task(self, job_id: int) -> str:  # type: ignore[no-untyped-def]
        from pipeline.process import process_job

        return process_job(context(), int(job_id)).value

    return app


def enqueue(app: Celery, job_id: int, queue: str | None = None) -> None:
    """Send the hint that ``job_id`` has work (on ``queue``, else the default queue); the
    database stays the truth."""
    app.send_task(PROCESS_JOB, args=[job_id], queue=queue or app.conf.task_default_queue)
