"""A site's scope overrides per model key (rule, gate), changed only with ``lnm-node scope set``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import audit
from db.models import ScopeOverride, Study, utcnow


@dataclass(frozen=True)
class Override:
    """A model key's override: the rule as JSON and the gate switch (None: the spec's)."""

    rule: dict[str, Any] | None
    gate: bool | None


def overrides(session: Session) -> dict[str, Override]:
    """Every model key's override."""
    return {
        row.model_key: Override(row.rule, row.gate)
        for row in session.scalars(select(ScopeOverride))
    }


def set_override(
    session: Session,
    model_key: str,
    actor: str,
    *,
    rule: dict[str, Any] | None = None,
    gate: bool | None = None,
    reset: bool = False,
) -> Override:
    """Change ``model_key``'s override (only the parts given; ``reset`` back to the spec's).

    Audited in the caller's transaction with the values before and after.
    """
    row = session.scalar(select(ScopeOverride).where(ScopeOverride.model_key == model_key))
    before = None if row is None else {"rule": row.rule, "gate": row.gate}
    if row is None:
        row = ScopeOverride(model_key=model_key, rule=None, gate=None, actor=actor)
        session.add(row)
    if reset:
        row.rule, row.gate = None, None
    if rule is not None:
        row.rule = rule
    if gate is not None:
        row.gate = gate
    row.actor, row.updated_at = actor, utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "scope_set",
        "model",
        model_key,
        before=before,
        after={"rule": row.rule, "gate": row.gate},
    )
    return Override(row.rule, row.gate)


def record_verdicts(
    session: Session, study: Study, verdicts: list[dict[str, Any]], actor: str = "sweeper"
) -> None:
    """Keep a study's scope verdicts and audit each model that gets no job, with its rule."""
    study.scope = {"generation": study.generation, "models": verdicts}
    for verdict in verdicts:
        if not verdict["run"]:
            audit.record(
                session,
                actor,
                "out_of_scope",
                "study",
                study.id,
                generation=study.generation,
                **verdict,
            )
