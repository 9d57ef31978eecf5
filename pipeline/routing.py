"""Which Celery queue a job goes to: per model key, then per model family, else the default."""

from __future__ import annotations

from kernel.settings import Settings


def queue_for(settings: Settings, model_key: str, family: str | None) -> str:
    """The queue of a job of ``model_key`` (of ``family``): ``queue_routes`` by key, by family,
    else ``default_queue``."""
    routes = settings.queue_routes
    if model_key in routes:
        return routes[model_key]
    if family is not None and family in routes:
        return routes[family]
    return settings.default_queue


def known_queues(settings: Settings) -> list[str]:
    """Every queue a job can be sent to: the default one and each routed one, sorted."""
    return sorted({settings.default_queue, *settings.queue_routes.values()})
