"""How many messages wait in the broker, per queue: Redis list lengths, or the folder queue's files."""

from __future__ import annotations

import logging
from pathlib import Path

import redis

from kernel.settings import Settings
from pipeline.routing import known_queues

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 1.0


def _folder_lengths(folder: Path, queues: list[str]) -> dict[str, int]:
    """kombu's filesystem transport writes one ``<ms>_<uuid>.<queue>.msg`` file per message."""
    counts = dict.fromkeys(queues, 0)
    if folder.is_dir():
        for path in folder.glob("*.msg"):
            queue = path.name.removesuffix(".msg").partition(".")[2]
            if queue in counts:
                counts[queue] += 1
    return counts


def broker_queue_lengths(settings: Settings) -> dict[str, int] | None:
    """Messages waiting per known queue; None when the broker cannot be asked now."""
    queues = known_queues(settings)
    if settings.broker_url.startswith("filesystem://"):
        return _folder_lengths(Path(settings.home) / "queue" / "messages", queues)
    if settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
        client = redis.Redis.from_url(
            settings.broker_url, socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
        )
        try:
            return {queue: int(client.llen(queue)) for queue in queues}
        except (redis.RedisError, OSError) as exc:
            log.warning("broker queue length unavailable", extra={"error": type(exc).__name__})
            return None
        finally:
            client.close()
    return None
