"""Queue routing per model: the sweeper enqueues each job on its model's queue (real Redis)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from kernel.settings import Settings
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.routing import known_queues, queue_for
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from pipeline.worker import worker_argv
from tests.integration.pipeline.conftest import make_settings, receive
from tests.support.servers import private_redis

pytestmark = pytest.mark.integration


def test_queue_for_key_then_family_then_default(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, default_queue="cpu", queue_routes="ynet=gpu,special=big")
    assert queue_for(settings, "special", "ynet") == "big"
    assert queue_for(settings, "ynet-busi", "ynet") == "gpu"
    assert queue_for(settings, "other", "cnn") == "cpu"
    assert queue_for(settings, "other", None) == "cpu"
    assert known_queues(settings) == ["big", "cpu", "gpu"]


def test_queue_routes_bad_entry_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="queue_routes"):
        Settings(home=tmp_path, queue_routes="ynet")
    with pytest.raises(ValueError, match="queue_routes"):
        Settings(home=tmp_path, queue_routes='{"ynet": "g p u"}')


def test_worker_argv_named_queues_prefetch_one(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, queue_routes="ynet=gpu", default_queue="cpu")
    argv = worker_argv(settings, queues=["gpu"])
    assert argv[argv.index("-Q") + 1] == "gpu"
    assert worker_argv(settings)[worker_argv(settings).index("-Q") + 1] == "cpu,gpu"
    app = make_celery(settings)
    assert app.conf.worker_prefetch_multiplier == 1 and app.conf.task_acks_late
    assert app.conf.task_time_limit < settings.redis_visibility_timeout_seconds


def test_sweeper_routed_model_job_enqueued_on_its_queue(tmp_path: Path, tiny_models_dir: Path) -> None:
    with private_redis(tmp_path / "redis") as server:
        settings = make_settings(tmp_path / "home", tiny_models_dir, broker_url=server.url(),
                                 default_queue="cpu", queue_routes="segcls=gpu")
        ctx = prepare(settings)
        receive(ctx, write_us_study(tmp_path / "study", seed=21, count=1))
        assert sweep(ctx, make_celery(settings)).enqueued == 1
        client = redis.Redis(port=server.port)
        assert (client.llen("gpu"), client.llen("cpu")) == (1, 0)  # tiny-ynet is of family segcls

        routed = make_settings(tmp_path / "home", tiny_models_dir, broker_url=server.url(),
                               default_queue="cpu", queue_routes="tiny-ynet=special,segcls=gpu")
        receive(ctx, write_us_study(tmp_path / "study2", seed=22, count=1))
        ctx.settings = routed
        assert sweep(ctx, make_celery(routed)).enqueued == 1
        assert (client.llen("special"), client.llen("gpu")) == (1, 1)
        client.close()
