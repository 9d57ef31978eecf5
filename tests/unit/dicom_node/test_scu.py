from pathlib import Path

from dicom_node.scu import StoreResult


def test_store_result_describe_status_category_and_comment_or_why_not_sent() -> None:
    path = Path("study/a.dcm")
    assert StoreResult(path, "1.2.3", 0x0000).describe() == "study/a.dcm: 0x0000 Success"
    refused = StoreResult(path, "1.2.3", 0xA900, "StudyInstanceUID is missing")
    assert refused.describe() == "study/a.dcm: 0xA900 Failure (StudyInstanceUID is missing)"
    assert not refused.ok
    unread = StoreResult(path, None, None, "not a DICOM file")
    assert unread.describe() == "study/a.dcm: not sent (not a DICOM file)"
