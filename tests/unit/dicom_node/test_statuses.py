import pytest

from dicom_node import statuses


def test_status_category_named_codes_match_pynetdicom_categories() -> None:
    assert statuses.status_category(statuses.SUCCESS) == "Success"
    assert statuses.status_category(statuses.COERCION_OF_DATA_ELEMENTS) == "Warning"
    for code in (
        statuses.OUT_OF_RESOURCES,
        statuses.DATASET_DOES_NOT_MATCH_SOP_CLASS,
        statuses.CANNOT_UNDERSTAND,
        statuses.INSTANCE_TOO_LARGE,
        statuses.SOP_CLASS_NOT_SUPPORTED,
    ):
        assert statuses.status_category(code) == "Failure"


def test_is_failure_success_and_warning_false_others_true() -> None:
    assert not statuses.is_failure(statuses.SUCCESS)
    assert not statuses.is_failure(statuses.ELEMENTS_DISCARDED)
    assert statuses.is_failure(statuses.OUT_OF_RESOURCES)
    assert statuses.is_failure(0xFFFF)  # unknown codes are not a store


def test_error_comment_valid_lo_ascii_single_spaced_cut_to_64() -> None:
    comment = statuses.error_comment("header\\does not\x00parse:\n  é " + "x" * 80)
    assert comment.startswith("header does not parse: ? xxx")
    assert len(comment) == 64 and comment.endswith("...")
    assert comment.isascii() and "\\" not in comment
    assert statuses.error_comment("StudyInstanceUID is missing") == "StudyInstanceUID is missing"


def test_status_with_comment_carries_status_and_comment_none_when_empty() -> None:
    answer = statuses.status_with_comment(statuses.CANNOT_UNDERSTAND, "pixel data does not decode")
    assert (answer.Status, answer.ErrorComment) == (0xC210, "pixel data does not decode")
    assert "ErrorComment" not in statuses.status_with_comment(statuses.OUT_OF_RESOURCES, " \n")


@pytest.mark.parametrize(
    ("code", "permanent"),
    [(0xC210, True), (0xA900, True), (0x0122, True), (0xA700, False), (0x0110, False), (0x0000, False)],
)
def test_is_permanent_failure_retried_only_when_a_resend_may_succeed(code: int, permanent: bool) -> None:
    assert statuses.is_permanent_failure(code) is permanent
