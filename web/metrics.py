"""/metrics: a Prometheus collector that reads the database, at most once per short cache period.

Values come from the database (and the broker, the spool), never from counters kept in this
process, so they are right whichever process did the work. /metrics needs no login, so a
scrape answers from a cache of ``metrics_cache_seconds``: however often it is asked, the
database aggregates and the broker connection run at most once per period (concurrent
scrapes wait for the one computing). No patient identifiers: labels are states, queues and
devices only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db import views
from db.models import Delivery, Job, Study
from kernel.settings import Settings
from kernel.spool import Spool
from web.broker import broker_queue_lengths
from web.gpu import gpu_memory

log = logging.getLogger(__name__)

#: upper bounds (seconds) of the assembled -> delivered latency histogram
LATENCY_BUCKETS = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0)


class NodeCollector(Collector):
    """Every lnm_* metric, computed at scrape time."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        spool: Spool,
        gpu: Callable[[Settings], list] = gpu_memory,  # type: ignore[type-arg]
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._spool = spool
        self._gpu = gpu
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        """The metrics of the last computation, recomputed when older than the cache period."""
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= self._settings.metrics_cache_seconds:
                self._cached = (now, list(self._compute()))
            metrics = self._cached[1]
        yield from metrics

    def _compute(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("lnm_database_up", "1 when the database answered this scrape")
        try:
            database = list(self._database_metrics())
        except SQLAlchemyError as exc:
            log.warning("metrics: database unavailable", extra={"error": type(exc).__name__})
            database = []
        up.add_metric([], 1.0 if database else 0.0)
        yield up
        yield from database
        yield from self._broker_metrics()
        yield from self._spool_metrics()
        yield from self._gpu_metrics()

    def _database_metrics(self) -> Iterator[Metric]:
        with self._sessions() as session:
            received = views.instance_count(session)
            studies, jobs = views.states(session, Study), views.states(session, Job)
            deliveries = views.states(session, Delivery)
            failures = views.delivery_failure_count(session)
            latency = views.job_latency_histogram(session, LATENCY_BUCKETS)
        counter = CounterMetricFamily("lnm_received_instances", "Instances received and stored")
        counter.add_metric([], received)
        yield counter
        yield _by_state("lnm_studies", "Studies by state", studies)
        yield _by_state("lnm_jobs", "Jobs by state", jobs)
        yield _by_state("lnm_deliveries", "Deliveries (job x destination) by state", deliveries)
        depth = GaugeMetricFamily(
            "lnm_queue_depth", "Jobs waiting for (QUEUED) or held by (RUNNING) a worker",
            labels=["state"],
        )
        for state, count in views.queue_depth_from(jobs).items():
            depth.add_metric([state], count)
        yield depth
        failed = CounterMetricFamily(
            "lnm_delivery_failures", "Delivery attempts that failed (retried or dead-lettered)"
        )
        failed.add_metric([], failures)
        yield failed
        histogram = HistogramMetricFamily(
            "lnm_job_latency_seconds", "Time from study assembled (job created) to job delivered"
        )
        buckets = [(_bound(b), float(n)) for b, n in latency.buckets]
        histogram.add_metric([], [*buckets, ("+Inf", float(latency.count))], latency.total_seconds)
        yield histogram

    def _broker_metrics(self) -> Iterator[Metric]:
        lengths = broker_queue_lengths(self._settings)
        if lengths is None:
            return
        gauge = GaugeMetricFamily(
            "lnm_broker_queue_length", "Messages waiting in the broker", labels=["queue"]
        )
        for queue, length in sorted(lengths.items()):
            gauge.add_metric([queue], length)
        yield gauge

    def _spool_metrics(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("lnm_quarantined_instances", "Quarantine records in the spool")
        gauge.add_metric([], self._spool.quarantine_count())
        yield gauge

    def _gpu_metrics(self) -> Iterator[Metric]:
        used = GaugeMetricFamily(
            "lnm_gpu_memory_used_bytes", "GPU memory in use (device-wide); device=none without a GPU",
            labels=["device"],
        )
        total = GaugeMetricFamily("lnm_gpu_memory_total_bytes", "GPU memory", labels=["device"])
        devices = self._gpu(self._settings)
        for device in devices:
            used.add_metric([device.device], device.used_bytes)
            total.add_metric([device.device], device.total_bytes)
        if not devices:
            used.add_metric(["none"], 0)
            total.add_metric(["none"], 0)
        yield used
        yield total


def _bound(value: float) -> str:
    return f"{value:g}" if value != int(value) else f"{int(value)}.0"


def _by_state(name: str, documentation: str, counts: dict[str, int]) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, documentation, labels=["state"])
    for state, count in counts.items():
        gauge.add_metric([state], count)
    return gauge


def make_registry(settings: Settings, sessions: sessionmaker[Session], spool: Spool) -> CollectorRegistry:
    """A registry of its own (not the process-wide default) holding the node's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(settings, sessions, spool))
    return registry
