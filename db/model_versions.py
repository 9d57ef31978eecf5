"""Named queries over registered model versions."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import audit
from db.models import ModelVersion


def register_version(
    session: Session, model_key: str, version: str, family: str, weights_sha256: str,
    metrics: dict[str, object],
) -> tuple[ModelVersion, bool]:
    """The row of (key, version), inserted disabled when new; returns (row, created)."""
    row = session.scalar(
        select(ModelVersion).where(ModelVersion.model_key == model_key, ModelVersion.version == version)
    )
    if row is not None:
        return row, False
    row = ModelVersion(
        model_key=model_key, version=version, family=family, weights_sha256=weights_sha256,
        enabled=False, metrics=metrics,
    )
    session.add(row)
    session.flush()
    audit.record(session, "registry", "register", "model_version", row.id, model=f"{model_key}@{version}")
    return row, True


def any_enabled(session: Session) -> bool:
    return session.scalar(select(ModelVersion.id).where(ModelVersion.enabled.is_(True)).limit(1)) is not None


def enable(session: Session, row: ModelVersion, actor: str) -> None:
    """Enable ``row`` and disable the other versions of the same key (one live version per key)."""
    for other in session.scalars(select(ModelVersion).where(ModelVersion.model_key == row.model_key)):
        other.enabled = other.id == row.id
    audit.record(session, actor, "enable", "model_version", row.id, model=f"{row.model_key}@{row.version}")


def version_rows(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.model_key, ModelVersion.id)))


class VersionError(ValueError):
    """A promotion, rollback, retirement or shadowing that cannot be done (the message says why)."""


def find_version(session: Session, model_key: str, version: str) -> ModelVersion:
    """The row of ``model_key@version``; raises ``VersionError`` when it is not registered."""
    row = session.scalar(
        select(ModelVersion).where(ModelVersion.model_key == model_key, ModelVersion.version == version)
    )
    if row is None:
        raise VersionError(f"model {model_key}@{version} is not registered in the database")
    return row


def promote(session: Session, row: ModelVersion, actor: str) -> ModelVersion | None:
    """Make ``row`` the live version of its key (no longer shadow); returns the one it replaces.

    New jobs get it at the next assembly; jobs already created keep their version.
    """
    if row.retired:
        raise VersionError(f"model {row.model_key}@{row.version} is retired and cannot be promoted")
    previous = next(
        (r for r in session.scalars(select(ModelVersion).where(
            ModelVersion.model_key == row.model_key, ModelVersion.enabled.is_(True))) if r.id != row.id),
        None,
    )
    row.shadow = False
    enable(session, row, actor)
    audit.record(
        session, actor, "promote", "model_version", row.id,
        model=f"{row.model_key}@{row.version}",
        replaced=None if previous is None else f"{previous.model_key}@{previous.version}",
    )
    return previous


def _live_history(session: Session, model_key: str) -> list[str]:
    """Versions of ``model_key`` that were live in turn, the live one last, from the audit log.

    Each enable (a promotion, the registry's first default) puts its version on top; a
    rollback takes the versions it went back past off again, so a second rollback goes further
    back instead of returning to the version just rolled back from.
    """
    from db.models import AuditEvent

    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.entity == "model_version", AuditEvent.action.in_(("enable", "rollback")))
        .order_by(AuditEvent.id)
    )
    history: list[str] = []
    pushed = False  # the last event put its version on top
    for event in events:
        key, _, version = str(event.details.get("model", "")).partition("@")
        if key != model_key:
            continue
        if event.action == "enable":
            pushed = not history or history[-1] != version
            if pushed:
                history.append(version)
            continue
        if pushed:  # a rollback to ``version`` comes right after its own enable of it
            history.pop()
        pushed = False
        if version in history:  # back to where it was live: what came after is left
            del history[len(history) - history[::-1].index(version):]
        else:
            history.append(version)
    return history


def rollback(session: Session, model_key: str, actor: str) -> ModelVersion:
    """Re-enable the version that was live before the live one (skipping retired ones); a
    second rollback goes back one further, never to the version it rolled back from."""
    live = session.scalar(
        select(ModelVersion).where(ModelVersion.model_key == model_key, ModelVersion.enabled.is_(True))
    )
    if live is None:
        raise VersionError(f"no version of {model_key} is enabled: nothing to roll back")
    for version in reversed(_live_history(session, model_key)):
        if version == live.version:
            continue
        candidate = find_version(session, model_key, version)
        if not candidate.retired:
            enable(session, candidate, actor)
            audit.record(
                session, actor, "rollback", "model_version", candidate.id,
                model=f"{model_key}@{version}", replaced=f"{model_key}@{live.version}",
            )
            return candidate
    raise VersionError(f"{model_key}@{live.version} has no earlier enabled version to roll back to")


def retire(session: Session, row: ModelVersion, actor: str) -> None:
    """Disable ``row`` for good (neither live nor shadow, never promoted again)."""
    row.retired, row.enabled, row.shadow = True, False, False
    audit.record(session, actor, "retire", "model_version", row.id, model=f"{row.model_key}@{row.version}")


def set_shadow(session: Session, row: ModelVersion, shadow: bool, actor: str) -> None:
    """Run ``row`` beside the live version on new studies, its results kept from PACS (or stop)."""
    if shadow and (row.retired or row.enabled):
        state = "retired" if row.retired else "the live version"
        raise VersionError(f"model {row.model_key}@{row.version} is {state}; it cannot be a shadow")
    row.shadow = shadow
    audit.record(
        session, actor, "shadow" if shadow else "unshadow", "model_version", row.id,
        model=f"{row.model_key}@{row.version}",
    )


def shadow_models(session: Session) -> list[ModelVersion]:
    """Shadow versions (run beside the live ones, never delivered), oldest registration first."""
    return list(
        session.scalars(
            select(ModelVersion).where(ModelVersion.shadow.is_(True), ModelVersion.retired.is_(False))
            .order_by(ModelVersion.id)
        )
    )
