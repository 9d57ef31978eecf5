"""Real associations into the SCP: pynetdicom and DCMTK storescu, phantom and real files."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from sqlalchemy import func, select, update

from db.instances import study_counts_by_state
from db.models import AuditEvent, Study, StudyState
from db.views import instance_rows
from dicom_node.scp import receive_into
from dicom_node.scu import send_instances
from phantom.us_dicom import make_us_dataset
from tests.integration.dicom_node.helpers import CALLING_AE, Node
from tests.support.storescu import run_storescu

pytestmark = pytest.mark.integration


def _elements(ds: Dataset) -> dict[BaseTag, DataElement]:
    """The elements without group lengths and trailing padding (senders may drop both)."""
    return {
        element.tag: element
        for element in ds
        if element.tag.element != 0x0000 and element.tag != 0xFFFCFFFC
    }


def assert_stored(node: Node, files: list[Path]) -> None:
    """Each file is on disk under incoming/, equal to what was sent, and has its DB row."""
    with node.sessions() as session:
        rows = {row["sop_instance_uid"]: row for row in instance_rows(session)}
    for path in files:
        sent = dcmread(path)
        stored_path = node.spool.incoming_path(
            sent.StudyInstanceUID, sent.SeriesInstanceUID, sent.SOPInstanceUID
        )
        assert stored_path.is_file(), path.name
        stored = dcmread(stored_path)
        syntax = sent.file_meta.TransferSyntaxUID
        if syntax.is_compressed:  # compressed data travels as it is
            assert stored.file_meta.TransferSyntaxUID == syntax, path.name
        else:  # a sender may re-encode native data (e.g. implicit -> explicit VR)
            assert not stored.file_meta.TransferSyntaxUID.is_compressed, path.name
        assert stored.file_meta.MediaStorageSOPInstanceUID == sent.SOPInstanceUID
        assert _elements(stored) == _elements(sent), path.name
        row = rows[sent.SOPInstanceUID]
        assert row["study_instance_uid"] == sent.StudyInstanceUID
        assert row["sop_class_uid"] == sent.SOPClassUID
        assert row["state"] == "RECEIVED"
    assert node.spool.quarantined() == []


def test_scp_pynetdicom_phantom_every_syntax_stored(
    node: Node, phantom_files: dict[str, Path]
) -> None:
    files = list(phantom_files.values())
    statuses = send_instances(node.destination, files, CALLING_AE)
    assert sorted(statuses.values()) == [0] * len(files)
    assert_stored(node, files)


def test_scp_in_memory_mode_phantom_every_syntax_stored(
    make_node: Callable[..., Node], phantom_files: dict[str, Path]
) -> None:
    node = make_node(chunked=False)
    files = list(phantom_files.values())
    assert set(send_instances(node.destination, files, CALLING_AE).values()) == {0}
    assert_stored(node, files)


def test_scp_storescu_phantom_every_syntax_stored(
    node: Node, phantom_files: dict[str, Path]
) -> None:
    files = list(phantom_files.values())
    outcomes = run_storescu(node.port, files)
    assert outcomes == {path: "Success" for path in files}
    assert_stored(node, files)


def first_per_instance(files: list[Path]) -> list[Path]:
    """The first file of each SOP Instance UID (the real test files reuse some UIDs)."""
    first: dict[str, Path] = {}
    for path in files:
        first.setdefault(dcmread(path, stop_before_pixels=True).SOPInstanceUID, path)
    return list(first.values())


@pytest.mark.shared_data
def test_scp_pynetdicom_real_files_stored(node: Node, real_files: list[Path]) -> None:
    statuses = send_instances(node.destination, real_files, CALLING_AE)
    unique = first_per_instance(real_files)
    assert len(statuses) == len(unique) < len(real_files)
    assert set(statuses.values()) == {0}
    with node.sessions() as session:
        assert len(instance_rows(session)) == len(unique)
    assert_stored(node, unique)  # a reused SOP Instance UID keeps the first copy


@pytest.mark.shared_data
def test_scp_storescu_real_files_stored(node: Node, real_files: list[Path]) -> None:
    outcomes = run_storescu(node.port, real_files)
    assert outcomes == {path: "Success" for path in real_files}
    assert_stored(node, first_per_instance(list(outcomes)))  # outcomes are in sending order


def test_scp_resend_same_instance_success_one_row(
    node: Node, phantom_files: dict[str, Path]
) -> None:
    file = phantom_files["jpeg_baseline_colour"]
    assert list(send_instances(node.destination, [file], CALLING_AE).values()) == [0]
    assert list(send_instances(node.destination, [file], CALLING_AE).values()) == [0]
    assert run_storescu(node.port, [file]) == {file: "Success"}
    with node.sessions() as session:
        assert len(instance_rows(session)) == 1
    assert_stored(node, [file])


def test_scp_late_instance_after_assembly_new_generation(node: Node, tmp_path: Path) -> None:
    paths = []
    for index in range(2):
        ds, _, _ = make_us_dataset(
            seed=900 + index,
            rows=48,
            cols=64,
            study_instance_uid="1.2.826.0.1.3680043.8.498.1",
            series_instance_uid="1.2.826.0.1.3680043.8.498.1.1",
        )
        paths.append(tmp_path / f"{index}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    send_instances(node.destination, paths[:1], CALLING_AE)
    with node.sessions() as session, session.begin():
        session.execute(update(Study).values(assembled_generation=0, state=StudyState.READY))
    send_instances(node.destination, paths[1:], CALLING_AE)
    with node.sessions() as session:
        study = session.execute(select(Study)).scalar_one()
        assert (study.generation, study.state) == (1, StudyState.RECEIVING)
        assert study_counts_by_state(session) == {"RECEIVING": 1}


def test_scp_concurrent_associations_same_new_study_one_study_row(
    node: Node, tmp_path: Path
) -> None:
    study, series = "1.2.826.0.1.3680043.8.498.2", "1.2.826.0.1.3680043.8.498.2.1"
    batches: list[list[Path]] = []
    for sender in range(4):
        batch = []
        for index in range(3):
            ds, _, _ = make_us_dataset(
                seed=1000 + 10 * sender + index,
                rows=32,
                cols=32,
                study_instance_uid=study,
                series_instance_uid=series,
            )
            batch.append(tmp_path / f"{sender}-{index}.dcm")
            ds.save_as(batch[-1], enforce_file_format=True)
        batches.append(batch)
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(
            pool.map(lambda batch: send_instances(node.destination, batch, CALLING_AE), batches)
        )
    assert [sorted(a.values()) for a in answers] == [[0, 0, 0]] * 4
    with node.sessions() as session:
        assert len(instance_rows(session)) == 12
        assert session.scalar(select(func.count(Study.id))) == 1
        assert session.scalar(select(func.count(AuditEvent.id))) == 1


def test_scp_receiving_into_spool_tmp_moves_each_dataset_into_place(
    node: Node, phantom_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", tempfile.tempdir)  # restored after the test
    receive_into(node.spool)
    files = list(phantom_files.values())
    answers = send_instances(node.destination, files, CALLING_AE)
    assert sorted(set(answers.values())) == [0]
    assert_stored(node, files)
    assert list(node.spool.tmp_dir.iterdir()) == []  # nothing left behind, nothing copied twice

