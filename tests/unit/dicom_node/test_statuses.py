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
