"""STOW-RS answers a PACS can give, from a real HTTP(S) server on loopback that reads the
multipart upload as an origin does: what the node takes as stored, retries and refuses.

Found by probing (2026-12-07): a 301/302 was followed as a GET and recorded delivered with
nothing stored; a 202 was taken as full success; an unreadable answer raised ValueError and
failed the job; https ignored LNM_TLS_CA_CERTIFICATES; proxy variables redirected the upload.
"""

from __future__ import annotations

import io
import json
import ssl
import threading
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
import pytest

from dicom_node.stow import StowTls, stow_instances
from kernel.errors import PeerRejected, TransientError
from kernel.settings import StowDestination
from phantom.us_dicom import write_us_study
from tests.support.network import free_port
from tests.support.tls import make_pki

pytestmark = pytest.mark.integration


def _uploaded_uids(headers: object, body: bytes) -> list[str]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body  # type: ignore[index]
    )
    return [str(pydicom.dcmread(io.BytesIO(part.get_payload(decode=True))).SOPInstanceUID)
            for part in message.iter_parts()]


def _sequence(uids: list[str], reason: str | None = None) -> dict[str, object]:
    items = []
    for uid in uids:
        item: dict[str, object] = {"00081155": {"vr": "UI", "Value": [uid]}}
        if reason is not None:
            item["00081197"] = {"vr": "US", "Value": [reason]}
        items.append(item)
    return {"vr": "SQ", "Value": items}


class _Origin(BaseHTTPRequestHandler):
    """The first path segment says how to answer; every upload is kept in ``server.uploads``."""

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        uids = _uploaded_uids(self.headers, body)
        self.server.uploads.append(uids)  # type: ignore[attr-defined]
        mode = self.path.strip("/").split("/")[0]
        if mode in ("r301", "r302"):
            self.send_response(int(mode[1:]))
            self.send_header("Location", "/ok/studies")
            self.end_headers()
            return
        answers: dict[str, tuple[int, dict[str, object]]] = {
            "ok": (200, {"00081199": _sequence(uids)}),
            "half": (200, {"00081199": _sequence(uids[:1])}),
            "p202": (202, {}),
            "badreason": (200, {"00081198": _sequence(uids, reason="A700")}),
            "mixed": (200, {"00081198": {"vr": "SQ", "Value": [
                _sequence(uids[:1], reason=0xA700)["Value"][0],  # type: ignore[index]
                _sequence(uids[1:], reason=0xC000)["Value"][0],  # type: ignore[index]
            ]}}),
            "refused": (200, {"00081198": _sequence(uids, reason=0xC000)}),
        }
        code, answer = answers[mode]
        data = json.dumps(answer).encode() if answer else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _serve(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    server.uploads = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def origin() -> Iterator[ThreadingHTTPServer]:
    yield from _serve(ThreadingHTTPServer(("127.0.0.1", free_port()), _Origin))


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    return write_us_study(tmp_path / "study", seed=31, count=2)


def _at(server: ThreadingHTTPServer, mode: str, scheme: str = "http") -> StowDestination:
    return StowDestination.parse(f"stow+{scheme}://127.0.0.1:{server.server_address[1]}/{mode}")


def test_every_file_listed_stored(origin: ThreadingHTTPServer, files: list[Path]) -> None:
    stored = stow_instances(_at(origin, "ok"), files, timeout=10)
    assert sorted(stored) == sorted(origin.uploads[0])  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["r301", "r302"])
def test_redirect_not_followed_refused_naming_it(
    origin: ThreadingHTTPServer, files: list[Path], mode: str
) -> None:
    with pytest.raises(PeerRejected, match=r"a redirect to /ok/studies") as refused:
        stow_instances(_at(origin, mode), files, timeout=10)
    assert refused.value.status == 0xC000
    assert len(origin.uploads) == 1  # type: ignore[attr-defined]  # posted once, not re-sent as GET


@pytest.mark.parametrize(
    ("mode", "error", "words"),
    [
        ("half", TransientError, "stored 1 of 2 instances; not listed: "),
        ("p202", TransientError, "without listing what it stored"),
        ("badreason", PeerRejected, "cannot be read"),
        ("mixed", TransientError, "refused 2 of 2 instances"),  # one may store on a later try
        ("refused", PeerRejected, "refused 2 of 2 instances"),
    ],
)
def test_answer_that_is_not_full_success_not_taken_as_stored(
    origin: ThreadingHTTPServer, files: list[Path], mode: str, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        stow_instances(_at(origin, mode), files, timeout=10)


def test_proxy_variables_of_the_environment_not_used(
    origin: ThreadingHTTPServer, files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    assert len(stow_instances(_at(origin, "ok"), files, timeout=10)) == 2


def test_https_origin_checked_against_the_nodes_ca_presented_its_certificate(
    tmp_path: Path, files: list[Path]
) -> None:
    pki = make_pki(tmp_path / "pki")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.load_cert_chain(str(pki.server.certificate), str(pki.server.key))
    context.verify_mode = ssl.CERT_REQUIRED  # the node must present its certificate
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Origin)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for running in _serve(server):
        destination = _at(running, "ok", scheme="https")
        tls = StowTls(pki.ca, (pki.client.certificate, pki.client.key))
        assert len(stow_instances(destination, files, timeout=10, tls=tls)) == 2
        # the system's CAs do not know the hospital's: refused for good, saying why
        with pytest.raises(PeerRejected, match="TLS failed"):
            stow_instances(destination, files, timeout=10)
