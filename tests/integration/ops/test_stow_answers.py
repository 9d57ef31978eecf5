"""STOW-RS answers a PACS can give, from a real HTTP(S) server on loopback that reads the
multipart upload as an origin does: what the node takes as stored, retries and refuses.

Found by probing (2026-12-07): a 301/302 was followed as a GET and recorded delivered with
nothing stored; a 202 was taken as full success; an unreadable answer raised ValueError and
failed the job; https ignored LNM_TLS_CA_CERTIFICATES; proxy variables redirected the upload.
Left then, fixed 2026-12-08: an origin trickling its answer held the worker (the timeout bounded
each read, not the answer); an origin slower than the timeout got every file again on each
retry; Retry-After was ignored; an error answer's own words were dropped.
"""

from __future__ import annotations

import io
import json
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
import pytest

from db.models import DeliveryState, Job, Study
from dicom_node.stow import StowTls, retry_after_seconds, stow_instances
from kernel.errors import PeerRejected, TransientError
from kernel.settings import StowDestination
from phantom.us_dicom import write_us_study
from pipeline.deliver import deliver_to, retry_delay
from pipeline.serve import prepare
from tests.integration.pipeline.conftest import make_settings
from tests.support.network import free_port
from tests.support.tls import make_pki

pytestmark = pytest.mark.integration

SLOW_ANSWER_SECONDS = 3


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
        if mode == "e400":  # an error page in the origin's words
            self._answer(400, json.dumps({"Message": "Bad file format", "Details": "x\n" * 200}))
            return
        if mode == "busy":
            self._answer(503, "", {"Retry-After": "120"})
            return
        if mode == "slow":  # stores, then answers later than the client waits
            time.sleep(SLOW_ANSWER_SECONDS)
        code, answer = answers.get(mode, answers["ok"])
        data = json.dumps(answer).encode() if answer else b""
        if mode == "trickle":  # a valid answer, a few bytes at a time, each well within the timeout
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                for start in range(0, len(data), 8):
                    self.wfile.write(data[start : start + 8])
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:  # the client gave up
                pass
            return
        self._answer(code, data.decode())

    def do_GET(self) -> None:  # QIDO-RS: the instances of a series, as stored
        parts = self.path.strip("/").split("/")
        if parts[0] == "noqido":
            self._answer(404, "")
            return
        stored = [uid for upload in self.server.uploads for uid in upload]  # type: ignore[attr-defined]
        found = [{"00080018": {"vr": "UI", "Value": [uid]}} for uid in stored]
        self._answer(200 if found else 204, json.dumps(found) if found else "")

    def _answer(self, code: int, text: str, headers: dict[str, str] | None = None) -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/dicom+json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
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


def test_answer_trickled_within_each_read_timeout_cut_off_at_the_timeout(
    origin: ThreadingHTTPServer, files: list[Path]
) -> None:
    # about 40 pieces 0.2 s apart: no read waits 1 s, the whole answer takes about 8 s
    with pytest.raises(TransientError, match="the answer did not arrive within 1 s"):
        stow_instances(_at(origin, "trickle"), files, timeout=1)


def test_error_answer_names_the_origins_words_on_one_line(
    origin: ThreadingHTTPServer, files: list[Path]
) -> None:
    with pytest.raises(PeerRejected, match="HTTP 400: .*Bad file format") as refused:
        stow_instances(_at(origin, "e400"), files, timeout=10)
    assert "\n" not in str(refused.value)
    assert len(str(refused.value)) < 400  # the start of the answer, not all of it


def test_busy_origin_retry_after_carried_to_the_retry(
    origin: ThreadingHTTPServer, files: list[Path]
) -> None:
    with pytest.raises(TransientError, match="HTTP 503") as busy:
        stow_instances(_at(origin, "busy"), files, timeout=10)
    assert busy.value.retry_after == 120
    assert retry_delay(1, busy.value.retry_after) == timedelta(seconds=120)  # not 10 s
    assert retry_delay(1, 10**6) == timedelta(hours=1)  # capped
    assert retry_delay(5) == timedelta(seconds=160)


def test_retry_after_http_date_and_nonsense() -> None:
    now = datetime(2026, 12, 8, 1, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("Tue, 08 Dec 2026 01:02:00 GMT", now) == 120
    assert retry_after_seconds("Tue, 08 Dec 2026 00:02:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_origin_slower_than_the_timeout_not_uploaded_again_when_qido_lists_every_file(
    origin: ThreadingHTTPServer, files: list[Path]
) -> None:
    with pytest.raises(TransientError, match="ReadTimeout|did not arrive"):
        stow_instances(_at(origin, "slow"), files, timeout=1)  # it stored, and answered too late
    time.sleep(SLOW_ANSWER_SECONDS)  # the slow answer's handler has finished
    stored = stow_instances(_at(origin, "slow"), files, timeout=1, resend=True)
    assert sorted(stored) == sorted(origin.uploads[0])  # type: ignore[attr-defined]
    assert len(origin.uploads) == 1  # type: ignore[attr-defined]


def test_resend_uploads_again_when_the_origin_cannot_say(
    origin: ThreadingHTTPServer, files: list[Path]
) -> None:
    assert len(stow_instances(_at(origin, "noqido"), files, timeout=10, resend=True)) == 2
    assert len(stow_instances(_at(origin, "ok"), files, timeout=10, resend=True)) == 2  # listed
    assert len(origin.uploads) == 1  # type: ignore[attr-defined]  # the second found it stored


def test_deliver_to_second_attempt_finds_the_slow_origins_copy(
    origin: ThreadingHTTPServer, files: list[Path], tmp_path: Path, tiny_models_dir: Path
) -> None:
    destination = _at(origin, "slow")
    settings = make_settings(tmp_path / "home", tiny_models_dir, network_timeout_seconds=1,
                             destinations=f"stow+{destination.url}")
    ctx = prepare(settings)
    with ctx.sessions.begin() as session:
        study = Study(study_instance_uid="1.2.3", first_received_at=ctx.clock(),
                      last_received_at=ctx.clock())
        session.add(study)
        session.flush()
        job = Job(study_id=study.id, model_key="ynet-busi", model_version="1.0.0")
        session.add(job)
        session.flush()
        job_id = job.id
    first = deliver_to(ctx, job_id, destination, files)
    assert first.state is DeliveryState.RETRY
    time.sleep(SLOW_ANSWER_SECONDS)
    second = deliver_to(ctx, job_id, destination, files)
    assert second == (DeliveryState.SENT, None)
    assert len(origin.uploads) == 1  # type: ignore[attr-defined]
