"""The /metrics collector: values read from the database at scrape time."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from db.session import make_sessionmaker
from kernel.settings import Settings
from kernel.spool import Spool
from web.gpu import GpuMemory
from web.metrics import NodeCollector, make_registry


def _samples(registry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[no-untyped-def]
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_empty_node_reports_zeros_and_no_gpu(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    registry = make_registry(settings, make_sessionmaker(settings.database_url), Spool.under(tmp_path))
    samples = _samples(registry)
    assert samples[("lnm_database_up", ())] == 1
    assert samples[("lnm_received_instances_total", ())] == 0
    assert samples[("lnm_jobs", (("state", "QUEUED"),))] == 0
    assert samples[("lnm_queue_depth", (("state", "RUNNING"),))] == 0
    assert samples[("lnm_job_latency_seconds_count", ())] == 0
    assert samples[("lnm_broker_queue_length", (("queue", "lnm"),))] == 0
    assert samples[("lnm_gpu_memory_used_bytes", (("device", "none"),))] == 0


def test_metrics_quarantine_record_counted(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    spool = Spool.under(tmp_path)
    spool.quarantine(b"not dicom", "header does not parse", {"calling_ae_title": "US1"})
    registry = make_registry(settings, make_sessionmaker(settings.database_url), spool)
    assert _samples(registry)[("lnm_quarantined_instances", ())] == 1


def test_metrics_database_down_reports_up_zero(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url="sqlite:////nonexistent-dir/lnm.sqlite3")
    collector = NodeCollector(settings, make_sessionmaker(settings.database_url, migrate=False),
                              Spool.under(tmp_path))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    samples = _samples(registry)
    assert samples[("lnm_database_up", ())] == 0
    assert not any(name == "lnm_jobs" for name, _ in samples)


def test_metrics_gpu_present_reports_each_device(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    collector = NodeCollector(
        settings, make_sessionmaker(settings.database_url), Spool.under(tmp_path),
        gpu=lambda _settings: [GpuMemory("cuda:0", 3 * 1024**3, 80 * 1024**3)],
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    samples = _samples(registry)
    assert samples[("lnm_gpu_memory_used_bytes", (("device", "cuda:0"),))] == 3 * 1024**3
    assert samples[("lnm_gpu_memory_total_bytes", (("device", "cuda:0"),))] == 80 * 1024**3
    assert ("lnm_gpu_memory_used_bytes", (("device", "none"),)) not in samples


def test_metrics_scrapes_within_cache_period_answer_from_cache(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from db.models import Study, StudyState

    settings = Settings(home=tmp_path, metrics_cache_seconds=10)
    sessions = make_sessionmaker(settings.database_url)
    now = [1000.0]
    collector = NodeCollector(settings, sessions, Spool.under(tmp_path), clock=lambda: now[0])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ready = ("lnm_studies", (("state", "READY"),))
    assert _samples(registry)[ready] == 0
    with sessions.begin() as session:
        stamp = datetime(2026, 3, 1, tzinfo=UTC)
        session.add(Study(study_instance_uid="1.2.3", state=StudyState.READY,
                          first_received_at=stamp, last_received_at=stamp))
    sessions.kw["bind"].dispose()
    collector._sessions = None  # type: ignore[assignment]  # a scrape now must not touch the DB
    now[0] += 9.0
    assert _samples(registry)[ready] == 0
    collector._sessions = sessions
    now[0] += 1.0
    assert _samples(registry)[ready] == 1
