"""Association policy at the edge: calling AEs pinned to their host, concurrent association
limit, maximum PDU length. Real associations over loopback; 127.0.0.2 is a second source
address (the requestor binds its socket to it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import Verification

from dicom_node import statuses
from dicom_node.contexts import read_file_uids, scu_contexts
from tests.integration.dicom_node.helpers import Node
from tests.support.network import wait_until

pytestmark = pytest.mark.integration

OTHER_HOST = "127.0.0.2"


#: what the requestors propose: verification, and each phantom file's class and syntax
FILES_SENT = ("explicit_le", "rle", "cine_explicit_le")


@pytest.fixture
def contexts(phantom_files: dict[str, Path]) -> list[PresentationContext]:
    pairs = []
    for name in FILES_SENT:
        sop_class, _, syntax = read_file_uids(phantom_files[name])
        pairs.append((sop_class, syntax))
    return [build_context(Verification), *scu_contexts(pairs)]


def _associate(
    node: Node,
    contexts: list[PresentationContext],
    calling_ae: str,
    source: str = "127.0.0.1",
    max_pdu: int = 16382,
) -> Association:
    ae = AE(ae_title=calling_ae)
    ae.requested_contexts = contexts
    ae.maximum_pdu_size = max_pdu
    ae.acse_timeout = ae.network_timeout = ae.connection_timeout = 10
    return ae.associate("127.0.0.1", node.port, ae_title="LNMNODE", bind_address=(source, 0))


def _rejection(assoc: Association) -> tuple[int, int, int]:
    assert assoc.is_rejected, "the association was not rejected"
    primitive = assoc.acceptor.primitive
    return primitive.result, primitive.result_source, primitive.diagnostic


def _store(assoc: Association, path: Path) -> int:
    try:
        return int(assoc.send_c_store(dcmread(path)).Status)
    finally:
        assoc.release()


def _stored(node: Node) -> list[Path]:
    return sorted(node.spool.root.glob("incoming/*/*/*.dcm"))


def test_scp_pinned_calling_ae_from_its_host_stores(
    make_node: Callable[..., Node],
    phantom_files: dict[str, Path],
    contexts: list[PresentationContext],
) -> None:
    node = make_node(calling_ae_allowlist=["US1@127.0.0.1"])
    assoc = _associate(node, contexts, "US1", source="127.0.0.1")
    assert assoc.is_established
    assert assoc.requestor.address == "127.0.0.1"
    assert _store(assoc, phantom_files["explicit_le"]) == statuses.SUCCESS
    assert len(_stored(node)) == 1


def test_scp_pinned_calling_ae_from_other_host_rejected_113(
    make_node: Callable[..., Node],
    phantom_files: dict[str, Path],
    contexts: list[PresentationContext],
) -> None:
    node = make_node(calling_ae_allowlist=["US1@127.0.0.1", "US2@127.0.0.2"])
    assert _rejection(_associate(node, contexts, "US1", source=OTHER_HOST)) == (1, 1, 3)
    assert _rejection(_associate(node, contexts, "US2", source="127.0.0.1")) == (1, 1, 3)
    # each from its own host is accepted
    assert _store(_associate(node, contexts, "US2", source=OTHER_HOST), phantom_files["rle"]) == 0
    assert _store(_associate(node, contexts, "US1"), phantom_files["explicit_le"]) == 0
    assert len(_stored(node)) == 2


def test_scp_plain_and_network_allowlist_entries_accept_any_matching_host(
    make_node: Callable[..., Node], contexts: list[PresentationContext]
) -> None:
    node = make_node(calling_ae_allowlist=["US1@127.0.0.1", "ROAMING", "LAB@127.0.0.0/30"])
    for calling, source in (("ROAMING", OTHER_HOST), ("ROAMING", "127.0.0.1"), ("LAB", OTHER_HOST)):
        assoc = _associate(node, contexts, calling, source=source)
        assert assoc.is_established, (calling, source)
        assoc.release()
    assert _rejection(_associate(node, contexts, "INTRUDER")) == (1, 1, 3)
    assert _rejection(_associate(node, contexts, "LAB", source="127.0.0.4")) == (1, 1, 3)


def test_scp_more_than_max_associations_rejected_232_until_one_ends(
    make_node: Callable[..., Node],
    phantom_files: dict[str, Path],
    contexts: list[PresentationContext],
) -> None:
    node = make_node(max_associations=2)
    held = [_associate(node, contexts, "US1"), _associate(node, contexts, "US2")]
    assert all(assoc.is_established for assoc in held)
    assert _rejection(_associate(node, contexts, "US3")) == (2, 3, 2)
    # the associations held open still work, and a slot frees when one is released
    assert _store(held[0], phantom_files["explicit_le"]) == statuses.SUCCESS
    # the released association's server thread ends a moment after the release
    wait_until(lambda: len(node.server.active_associations) < 2, timeout=10, what="a free slot")
    assert _store(_associate(node, contexts, "US3"), phantom_files["rle"]) == statuses.SUCCESS
    held[1].release()
    assert len(_stored(node)) == 2


def test_scp_max_pdu_offered_and_large_instance_stored_in_many_pdus(
    make_node: Callable[..., Node],
    phantom_files: dict[str, Path],
    contexts: list[PresentationContext],
) -> None:
    node = make_node(max_pdu_size=4096)
    file = phantom_files["cine_explicit_le"]
    assert file.stat().st_size > 10 * 4096
    assoc = _associate(node, contexts, "US1", max_pdu=4096)
    assert assoc.is_established
    assert assoc.acceptor.maximum_length == 4096
    assert _store(assoc, file) == statuses.SUCCESS
    [stored] = _stored(node)
    assert dcmread(stored) == dcmread(file)
