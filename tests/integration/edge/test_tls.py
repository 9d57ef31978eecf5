"""DICOM TLS at the edge: the SCP with a CA-signed certificate, clients with and without one."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from dicom_node import statuses
from dicom_node.scu import echo, send_instances
from dicom_node.tls import client_context, client_context_for
from kernel.errors import TransientError
from kernel.settings import Destination, Settings
from tests.integration.dicom_node.helpers import CALLING_AE, Node
from tests.support.storescu import run_storescu
from tests.support.tls import Identity, Pki, make_pki

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_node(make_node: Callable[..., Node], pki: Pki) -> Node:
    """An SCP that speaks only DICOM TLS and requires a client certificate from our CA."""
    return make_node(
        tls_certificate=pki.server.certificate,
        tls_private_key=pki.server.key,
        tls_ca_certificates=pki.ca,
        network_timeout_seconds=5,
    )


def _tls_destination(node: Node) -> Destination:
    return Destination(ae_title=node.settings.ae_title, host="127.0.0.1", port=node.port, tls=True)


def _client_settings(tmp_path: Path, pki: Pki, identity: Identity | None) -> Settings:
    """The settings of a node whose SCU sends with ``identity`` (None: no certificate)."""
    return Settings(
        home=tmp_path / "client",
        tls_certificate=identity.certificate if identity else None,
        tls_private_key=identity.key if identity else None,
        tls_ca_certificates=pki.ca,
        tls_require_client_certificate=False,
    )


def _stored(node: Node) -> list[Path]:
    return sorted(node.spool.root.glob("incoming/*/*/*.dcm"))


def _established(
    port: int, tls_args: tuple[ssl.SSLContext, str] | None, timeout: float = 5
) -> bool:
    ae = AE(ae_title=CALLING_AE)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = ae.connection_timeout = timeout
    assoc = ae.associate("127.0.0.1", port, ae_title="LNMNODE", tls_args=tls_args)
    established = assoc.is_established
    if established:
        assoc.release()
    return established


def test_tls_scp_client_with_ca_signed_certificate_stores(
    tls_node: Node, pki: Pki, phantom_files: dict[str, Path], tmp_path: Path
) -> None:
    settings = _client_settings(tmp_path, pki, pki.client)
    destination = _tls_destination(tls_node)
    context = client_context_for(settings, destination)
    assert context is not None
    file = phantom_files["jpeg_baseline_grey"]
    assert send_instances(destination, [file], CALLING_AE, tls=context) == {
        str(dcmread(file, stop_before_pixels=True).SOPInstanceUID): statuses.SUCCESS
    }
    [stored] = _stored(tls_node)
    assert dcmread(stored).PixelData == dcmread(file).PixelData
    assert echo(destination, CALLING_AE, tls=client_context(settings)) == statuses.SUCCESS


def test_tls_scp_plain_tcp_clients_refused_nothing_stored(
    tls_node: Node, pki: Pki, phantom_files: dict[str, Path], tmp_path: Path
) -> None:
    assert not _established(tls_node.port, None)
    plain = Destination(ae_title="LNMNODE", host="127.0.0.1", port=tls_node.port)
    with pytest.raises(TransientError):
        send_instances(plain, [phantom_files["rle"]], CALLING_AE)
    [outcome] = run_storescu(tls_node.port, [phantom_files["explicit_le"]]).values()
    assert not outcome.startswith("Success"), outcome
    assert _stored(tls_node) == []
    # the SCP still serves TLS clients afterwards
    settings = _client_settings(tmp_path, pki, pki.client)
    assert echo(_tls_destination(tls_node), CALLING_AE, tls=client_context(settings)) == 0


@pytest.mark.parametrize("who", ["no_certificate", "untrusted_ca"])
def test_tls_scp_client_without_trusted_certificate_refused(
    tls_node: Node, pki: Pki, phantom_files: dict[str, Path], tmp_path: Path, who: str
) -> None:
    identity = None if who == "no_certificate" else pki.stranger
    settings = _client_settings(tmp_path, pki, identity)
    context = client_context(settings)
    assert not _established(tls_node.port, (context, "127.0.0.1"))
    with pytest.raises(TransientError):
        send_instances(_tls_destination(tls_node), [phantom_files["rle"]], CALLING_AE, tls=context)
    assert _stored(tls_node) == []


def test_tls_scp_client_certificate_optional_accepts_client_without_one(
    make_node: Callable[..., Node], pki: Pki, tmp_path: Path
) -> None:
    node = make_node(
        tls_certificate=pki.server.certificate,
        tls_private_key=pki.server.key,
        tls_require_client_certificate=False,
    )
    context = client_context(_client_settings(tmp_path, pki, None))
    assert _established(node.port, (context, "127.0.0.1"))
    assert not _established(node.port, None)


def test_tls_scu_peer_certificate_not_trusted_raises_transient(
    tls_node: Node, pki: Pki, tmp_path: Path
) -> None:
    # the client trusts only the stranger's CA: our server certificate does not verify
    settings = Settings(
        home=tmp_path / "client",
        tls_certificate=pki.client.certificate,
        tls_private_key=pki.client.key,
        tls_ca_certificates=pki.stranger.certificate,
        tls_require_client_certificate=False,
    )
    with pytest.raises(TransientError):
        echo(_tls_destination(tls_node), CALLING_AE, tls=client_context(settings))


def test_tls_scu_tls_destination_without_context_refuses_plain_tcp(tls_node: Node) -> None:
    with pytest.raises(ValueError, match="needs DICOM TLS"):
        echo(_tls_destination(tls_node), CALLING_AE)


def test_tls_scp_silent_connection_does_not_block_other_clients(
    make_node: Callable[..., Node], pki: Pki, tmp_path: Path
) -> None:
    # the handshake timeout (12 s) is longer than the client's (6 s): if the silent connection
    # held the accept loop, the second client would give up first
    node = make_node(
        tls_certificate=pki.server.certificate,
        tls_private_key=pki.server.key,
        tls_ca_certificates=pki.ca,
        network_timeout_seconds=12,
    )
    context = client_context(_client_settings(tmp_path, pki, pki.client))
    with socket.create_connection(("127.0.0.1", node.port)) as silent:
        assert _established(node.port, (context, "127.0.0.1"), timeout=6)
        silent.settimeout(30)
        assert silent.recv(1) == b""  # the node closes it after its handshake timeout


def _cli_send(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "send", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )


def test_tls_cli_send_with_ca_and_client_certificate_stores(
    tls_node: Node, pki: Pki, phantom_files: dict[str, Path]
) -> None:
    file = phantom_files["jpeg_ls"]
    to = f"LNMNODE@127.0.0.1:{tls_node.port}+tls"
    sent = _cli_send(
        str(file), "--to", to, "--calling-ae", CALLING_AE, "--ca", str(pki.ca),
        "--cert", str(pki.client.certificate), "--key", str(pki.client.key),
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "1 sent, 0 failed" in sent.stdout
    [stored] = _stored(tls_node)
    assert dcmread(stored).PixelData == dcmread(file).PixelData
    # without our client certificate the node refuses the association: nothing more is stored
    refused = _cli_send(str(phantom_files["rle"]), "--to", to, "--ca", str(pki.ca))
    assert refused.returncode == 1 and "not sent" in refused.stdout, refused.stdout + refused.stderr
    assert _stored(tls_node) == [stored]
    # TLS files for a plain peer are a usage error, not a silent plain-text send
    usage = _cli_send(str(file), "--to", f"LNMNODE@127.0.0.1:{tls_node.port}", "--ca", str(pki.ca))
    assert usage.returncode == 2 and "+tls" in usage.stdout + usage.stderr
