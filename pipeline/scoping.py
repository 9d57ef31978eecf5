"""A model's effective scope (spec default or the site's override) and a study's verdicts.

:func:`study_verdicts` is the one decision of which model versions a study gets a job of; the
assembly passes it to ``db.jobs.assemble_study``. The worker asks :func:`gate_enabled`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pydicom
from sqlalchemy import select
from sqlalchemy.orm import Session

from db import instances as instances_db
from db import jobs
from db import scope as scope_db
from db.models import Instance
from db.mpps import ScopeOf
from inference.registry import Registry, RegistryError
from inference.scope import (
    ScopeRule,
    ScopeVerdict,
    SeriesAttributes,
    decide,
    series_attributes,
)
from kernel.patient import patient_key
from kernel.settings import Settings
from pipeline.context import NodeContext

log = logging.getLogger(__name__)


def effective_rule(
    spec_rule: ScopeRule, override: scope_db.Override | None
) -> tuple[ScopeRule, str]:
    """(rule, source): the site's rule when it set one ("site"), else the spec's ("spec")."""
    if override is not None and override.rule is not None:
        return ScopeRule.model_validate(override.rule), "site"
    return spec_rule, "spec"


def gate_enabled(has_gate: bool, override: scope_db.Override | None) -> bool:
    """The gate runs when the spec carries one, unless the site switched it off (or on)."""
    if override is not None and override.gate is not None:
        return override.gate and has_gate
    return has_gate


def study_series(session: Session, study_id: int) -> list[SeriesAttributes]:
    """The rule's attributes of each series of a study (one header per series, no pixels)."""
    rows = session.execute(
        select(Instance.series_id, Instance.path, Instance.calling_ae_title)
        .where(Instance.study_id == study_id)
        .order_by(Instance.id)
    ).all()
    seen: set[int] = set()
    series = []
    for series_id, path, calling_ae in rows:
        if series_id in seen:
            continue
        try:
            header = pydicom.dcmread(Path(path), stop_before_pixels=True)
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            log.warning("scope: unreadable header", extra={"study_id": study_id, "error": str(exc)})
            continue
        seen.add(series_id)
        series.append(series_attributes(header, calling_ae))
    return series


ONE_PATIENT_RULE = "one patient per study"
"""The node's own rule before any model's: a study whose instances name several patients (a
merge or mislabelling error at the modality or PACS) gets no job of any model."""


def mixed_patients_verdict(ref: str, patients: int) -> ScopeVerdict:
    """The verdict for every model on a study whose instances name ``patients`` (> 1) patients."""
    reason = (
        f"the study's instances name {patients} patients (PatientID or its issuer differ): "
        "no model runs on a study that may mix patients"
    )
    return ScopeVerdict(ref, False, ONE_PATIENT_RULE, "node", reason)


def study_patient_count(session: Session, study_id: int) -> int:
    """How many patients (:func:`kernel.patient.patient_key`) the study's instances name.

    The key recorded on each instance row at receive is counted in the database (one
    statement). Rows recorded before migration 0005 have none: their files' headers are read
    (two elements, no pixels), theirs alone; an unreadable one is left out, with a warning.
    """
    patients, unkeyed = instances_db.patient_key_count(session, study_id)
    if not unkeyed:
        return patients
    keys, paths = instances_db.patient_keys(session, study_id)
    for path in paths:
        try:
            header = pydicom.dcmread(
                Path(path), stop_before_pixels=True, specific_tags=["IssuerOfPatientID", "PatientID"]
            )
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            log.warning("scope: unreadable header", extra={"study_id": study_id, "error": str(exc)})
            continue
        keys.add(patient_key(header))
    return len(keys)


def study_verdicts(ctx: NodeContext, study_id: int) -> dict[str, dict[str, Any]]:
    """``key@version`` -> scope verdict of every version the study would get a job of."""
    registry = Registry.from_settings(ctx.settings)
    with ctx.sessions() as session:
        return verdicts_in(session, registry, study_id)


def verdicts_in(session: Session, registry: Registry, study_id: int) -> dict[str, dict[str, Any]]:
    """:func:`study_verdicts` inside the caller's ``session`` (the MPPS SCP assembles a study in
    the transaction that records the step)."""
    series = study_series(session, study_id)
    overrides = scope_db.overrides(session)
    models = [(m.model_key, m.version) for m, _ in jobs.assembly_models(session)]
    patients = study_patient_count(session, study_id) if models else 1
    if patients > 1:
        log.warning(
            "study holds instances of several patients: no model runs on it",
            extra={"study_id": study_id, "patients": patients},
        )
        return {
            f"{key}@{version}": mixed_patients_verdict(f"{key}@{version}", patients).as_dict()
            for key, version in models
        }
    verdicts = {}
    for key, version in models:
        try:
            spec_rule = registry.get(f"{key}@{version}", key).scope.rule
        except RegistryError:  # not packaged here: the assembly's job then fails with the reason
            spec_rule = ScopeRule()
        rule, source = effective_rule(spec_rule, overrides.get(key))
        ref = f"{key}@{version}"
        verdicts[ref] = decide(ref, rule, source, series).as_dict()
    return verdicts


def scope_in_session(settings: Settings) -> ScopeOf:
    """The scope callable the MPPS path hands to :func:`db.mpps.act_on_step`."""

    def scope_of(session: Session, study_id: int) -> dict[str, dict[str, Any]]:
        return verdicts_in(session, Registry.from_settings(settings), study_id)

    return scope_of
