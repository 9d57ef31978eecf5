"""What a worker or sweeper process holds: settings, database, spool, models. Built once per process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from db.session import Timeouts, make_sessionmaker
from kernel.settings import Settings
from kernel.spool import Spool


def utc_now() -> datetime:
    return datetime.now(UTC)


def database_timeouts(settings: Settings) -> Timeouts:
    """The connect and statement timeouts ``settings`` give the database."""
    return Timeouts(
        settings.database_connect_timeout_seconds, settings.database_statement_timeout_seconds
    )


@dataclass
class NodeContext:
    """Process-wide resources, passed explicitly to every stage."""

    settings: Settings
    sessions: sessionmaker[Session]
    spool: Spool
    clock: Callable[[], datetime] = utc_now
    _model_cache: object | None = field(default=None, repr=False)
    _passes: object | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings, migrate: bool = True) -> NodeContext:
        spool = Spool.under(settings.home)  # creates the home folder the SQLite file lives in
        return cls(
            settings=settings,
            sessions=make_sessionmaker(
                settings.database_url,
                migrate=migrate,
                timeouts=database_timeouts(settings),
            ),
            spool=spool,
        )

    @property
    def model_cache(self):  # type: ignore[no-untyped-def]
        """Networks loaded in this process, per (key, version); torch is imported on first use."""
        if self._model_cache is None:
            from inference.loading import ModelCache

            self._model_cache = ModelCache()
        return self._model_cache

    @property
    def passes(self):  # type: ignore[no-untyped-def]
        """The process's forward-pass batcher (``inference.batching``), from the settings."""
        if self._passes is None:
            from inference.batching import ForwardBatcher

            self._passes = ForwardBatcher(
                self.settings.effective_batch_wait_seconds(), self.settings.batch_max
            )
        return self._passes
