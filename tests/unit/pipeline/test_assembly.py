from datetime import UTC, datetime, timedelta

from db.jobs import StudyTiming
from pipeline.assembly import AssemblyDecision, decide_assembly

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
QUIET, MAX_WAIT = timedelta(seconds=30), timedelta(minutes=60)


def test_decide_assembly_recent_instance_waits() -> None:
    study = StudyTiming(1, T0, T0 + timedelta(seconds=50))
    assert decide_assembly([study], T0 + timedelta(seconds=60), QUIET, MAX_WAIT) == []


def test_decide_assembly_quiet_study_is_complete() -> None:
    study = StudyTiming(1, T0, T0 + timedelta(seconds=10))
    assert decide_assembly([study], T0 + timedelta(seconds=40), QUIET, MAX_WAIT) == [AssemblyDecision(1, False)]


def test_decide_assembly_never_quiet_study_is_forced_after_max_wait() -> None:
    now = T0 + MAX_WAIT + timedelta(seconds=1)
    study = StudyTiming(7, T0, now - timedelta(seconds=1))
    assert decide_assembly([study], now, QUIET, MAX_WAIT) == [AssemblyDecision(7, True)]
