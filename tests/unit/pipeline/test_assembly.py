from datetime import UTC, datetime, timedelta

from db.jobs import StudyTiming
from pipeline.assembly import AssemblyDecision, decide_assembly, next_deadline

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


def test_next_deadline_is_the_earliest_quiet_end_or_forced_time() -> None:
    quiet_soon = StudyTiming(1, T0, T0 + timedelta(seconds=5))
    quiet_later = StudyTiming(2, T0, T0 + timedelta(seconds=20))
    assert next_deadline([quiet_later, quiet_soon], QUIET, MAX_WAIT) == T0 + timedelta(seconds=35)
    trickling = StudyTiming(3, T0 - MAX_WAIT + timedelta(seconds=1), T0 + timedelta(seconds=20))
    assert next_deadline([quiet_soon, trickling], QUIET, MAX_WAIT) == T0 + timedelta(seconds=1)
    assert next_deadline([], QUIET, MAX_WAIT) is None


def test_a_study_held_by_an_mpps_in_progress_ignores_its_quiet_time_until_max_wait() -> None:
    study = StudyTiming(4, T0, T0 + timedelta(seconds=10))
    later = T0 + timedelta(seconds=40)
    assert decide_assembly([study], later, QUIET, MAX_WAIT, held={4}) == []
    assert next_deadline([study], QUIET, MAX_WAIT, held={4}) == T0 + MAX_WAIT
    forced = T0 + MAX_WAIT
    assert decide_assembly([study], forced, QUIET, MAX_WAIT, held={4}) == [AssemblyDecision(4, True)]


def test_a_study_whose_step_was_abandoned_is_released_by_its_quiet_time_recorded_forced() -> None:
    """A step IN PROGRESS not updated within max_wait no longer holds its study; the study is
    then assembled at its quiet time, and recorded forced: the modality never ended its step
    (before, such a release at max wait was audited as an ordinary quiet-time assembly)."""
    study = StudyTiming(5, T0, T0 + timedelta(minutes=10))
    now = T0 + MAX_WAIT + timedelta(seconds=1)
    assert decide_assembly([study], now, QUIET, MAX_WAIT, abandoned={5}) == [AssemblyDecision(5, True)]
    assert decide_assembly([study], now, QUIET, MAX_WAIT) == [AssemblyDecision(5, False)]
