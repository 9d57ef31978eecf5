"""Named queries over pathology labels: store imported outcomes and join them to received studies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import audit
from db.models import (
    Instance,
    LabelLevel,
    PathologyLabel,
    PathologyOutcome,
    Series,
    Study,
    utcnow,
)


@dataclass(frozen=True)
class LabelRecord:
    """One validated row of a labels file."""

    level: LabelLevel
    uid: str
    outcome: PathologyOutcome
    node_station: str | None
    outcome_date: date | None


def resolve_study(session: Session, level: LabelLevel, uid: str) -> int | None:
    """The id of the received study a study/series/instance UID belongs to, or None."""
    if level is LabelLevel.STUDY:
        return session.scalar(select(Study.id).where(Study.study_instance_uid == uid))
    if level is LabelLevel.SERIES:
        return session.scalar(select(Series.study_id).where(Series.series_instance_uid == uid))
    return session.scalar(select(Instance.study_id).where(Instance.sop_instance_uid == uid))


@dataclass(frozen=True)
class OutcomeChange:
    """An imported label that gives a stored label another outcome."""

    level: LabelLevel
    uid: str
    old: PathologyOutcome
    new: PathologyOutcome

    @property
    def replaces_known(self) -> bool:
        """Whether a known outcome (metastatic or benign) is overwritten; an unknown one being
        filled in is the pathology arriving, not a correction."""
        return self.old is not PathologyOutcome.UNKNOWN

    def __str__(self) -> str:
        return f"{self.level.value} {self.uid}: {self.old.value} -> {self.new.value}"


class OutcomeConflict(ValueError):
    """An import that would overwrite known outcomes without ``replace``; nothing was written."""

    def __init__(self, changes: list[OutcomeChange]) -> None:
        super().__init__(
            f"{len(changes)} label(s) would change a known pathology outcome: nothing imported; "
            "check them, then import with --replace to overwrite them (each is audited)"
        )
        self.changes = changes


@dataclass(frozen=True)
class ImportResult:
    """What an import did: labels matched to a received study, unmatched, outcomes changed."""

    matched: int
    unmatched: int
    changed: tuple[OutcomeChange, ...]


def upsert_labels(
    session: Session,
    records: list[LabelRecord],
    source: str,
    actor: str = "admin",
    replace: bool = False,
) -> ImportResult:
    """Insert or update each (level, uid) label and resolve its study.

    A label whose outcome the import changes is listed in the result and audited one by one
    (``change_label_outcome``: old and new outcome); overwriting a known outcome takes
    ``replace``, else :class:`OutcomeConflict` is raised before anything is written. The
    import is audited once more as a whole; the caller commits.
    """
    uids = sorted({r.uid for r in records})
    stored = {
        (row.level, row.uid): row
        for start in range(0, len(uids), 500)  # bound the query's parameters
        for row in session.scalars(
            select(PathologyLabel).where(PathologyLabel.uid.in_(uids[start : start + 500]))
        )
    }
    changes = [
        OutcomeChange(record.level, record.uid, stored[key].outcome, record.outcome)
        for record in records
        if (key := (record.level, record.uid)) in stored and stored[key].outcome != record.outcome
    ]
    refused = [change for change in changes if change.replaces_known]
    if refused and not replace:
        raise OutcomeConflict(refused)
    matched = 0
    for record in records:
        row = stored.get((record.level, record.uid))
        if row is None:
            row = PathologyLabel(level=record.level, uid=record.uid)
            session.add(row)
        row.outcome = record.outcome
        row.node_station = record.node_station
        row.outcome_date = record.outcome_date
        row.source = source
        row.imported_at = utcnow()
        row.study_id = resolve_study(session, record.level, record.uid)
        matched += row.study_id is not None
    session.flush()
    for change in changes:
        audit.record(session, actor, "change_label_outcome", "pathology_label", change.uid,
                     level=change.level.value, old=change.old.value, new=change.new.value,
                     source=source)  # fmt: skip
    audit.record(
        session,
        actor,
        "import_labels",
        "pathology_label",
        source,
        rows=len(records),
        matched=matched,
        unmatched=len(records) - matched,
        changed=len(changes),
    )
    return ImportResult(matched, len(records) - matched, tuple(changes))


def rematch(session: Session) -> int:
    """Resolve labels imported before their study arrived; returns how many matched now."""
    found = 0
    for row in session.scalars(select(PathologyLabel).where(PathologyLabel.study_id.is_(None))):
        row.study_id = resolve_study(session, row.level, row.uid)
        found += row.study_id is not None
    return found


def study_outcomes(session: Session) -> dict[int, int]:
    """study id -> 1 (metastatic) / 0 (benign) for studies with a known outcome.

    A study with both outcomes among its labels (e.g. two nodes) counts as metastatic.
    """
    outcomes: dict[int, int] = {}
    rows = session.execute(
        select(PathologyLabel.study_id, PathologyLabel.outcome).where(
            PathologyLabel.study_id.is_not(None),
            PathologyLabel.outcome != PathologyOutcome.UNKNOWN,
        )
    ).all()
    for study_id, outcome in rows:
        value = int(outcome is PathologyOutcome.METASTATIC)
        outcomes[study_id] = max(outcomes.get(study_id, 0), value)
    return outcomes


def unlabelled_study_uids(session: Session) -> list[str]:
    """StudyInstanceUIDs of the received studies that no label names, in UID order."""
    labelled = select(PathologyLabel.study_id).where(PathologyLabel.study_id.is_not(None))
    return list(
        session.scalars(
            select(Study.study_instance_uid)
            .where(Study.id.not_in(labelled))
            .order_by(Study.study_instance_uid)
        )
    )


def label_rows(session: Session) -> list[PathologyLabel]:
    """Every label, in import order."""
    return list(session.scalars(select(PathologyLabel).order_by(PathologyLabel.id)))


def label_records(session: Session) -> list[LabelRecord]:
    """Every label of a received study, as the records a labels file gives."""
    rows = session.scalars(
        select(PathologyLabel)
        .where(PathologyLabel.study_id.is_not(None))
        .order_by(PathologyLabel.id)
    )
    return [
        LabelRecord(row.level, row.uid, row.outcome, row.node_station, row.outcome_date)
        for row in rows
    ]


def labelled_instances(session: Session) -> list[tuple[str, str, int]]:
    """(instance path, study UID, 0/1 outcome) of every instance of a study with a known outcome."""
    outcomes = study_outcomes(session)
    if not outcomes:
        return []
    rows = session.execute(
        select(Instance.path, Study.study_instance_uid, Instance.study_id)
        .join(Study, Study.id == Instance.study_id)
        .where(Instance.study_id.in_(list(outcomes)))
        .order_by(Instance.id)
    ).all()
    return [(path, study_uid, outcomes[study_id]) for path, study_uid, study_id in rows]


def labelled_predictions(
    session: Session, model_key: str
) -> dict[str, dict[int, tuple[float, int]]]:
    """version -> {study id: (probability, 0/1 outcome)} of ``model_key``'s jobs on labelled studies.

    The newest job with a probability counts per (version, study).
    """
    from db.models import Job

    outcomes = study_outcomes(session)
    result: dict[str, dict[int, tuple[float, int]]] = {}
    if not outcomes:
        return result
    jobs = session.scalars(
        select(Job)
        .where(
            Job.model_key == model_key,
            Job.probability.is_not(None),
            Job.study_id.in_(list(outcomes)),
        )
        .order_by(Job.id)
    )
    for job in jobs:
        result.setdefault(job.model_version, {})[job.study_id] = (
            float(job.probability),
            outcomes[job.study_id],  # type: ignore[arg-type]
        )
    return result
