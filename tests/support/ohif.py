"""The OHIF viewer (prebuilt ``@ohif/app`` from npm) served on the same origin as Orthanc's
DICOMweb, for browser tests of our outputs in a real viewer.

``scripts/install.sh`` installs the pinned version's ``dist`` folder (``deploy/ohif/VERSION``)
into a cache folder; :func:`ohif_dist` finds it (``LNM_OHIF_DIST`` overrides). The proxy serves
the viewer at ``/``, our ``deploy/ohif/app-config.js`` at ``/app-config.js`` and forwards
``/dicom-web/...`` to Orthanc: one origin, so the browser needs no CORS.
"""

from __future__ import annotations

import mimetypes
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.network import free_port

DEPLOY_OHIF = Path(__file__).resolve().parents[2] / "deploy" / "ohif"
APP_CONFIG = DEPLOY_OHIF / "app-config.js"
OHIF_VERSION = (DEPLOY_OHIF / "VERSION").read_text().strip()
_FORWARDED_HEADERS = ("Accept", "Content-Type", "Range")
_RETURNED_HEADERS = ("Content-Type", "Content-Length", "Content-Range", "ETag")


def ohif_dist() -> Path:
    """The installed OHIF ``dist`` folder; the test fails when scripts/install.sh did not run."""
    default = Path.home() / ".cache" / "lnm-node" / f"ohif-{OHIF_VERSION}" / "dist"
    dist = Path(os.environ.get("LNM_OHIF_DIST", default))
    if not (dist / "index.html").is_file():
        pytest.fail(f"OHIF {OHIF_VERSION} is not installed in {dist} (run scripts/install.sh)")
    return dist


def _handler(dist: Path, orthanc_http_port: int) -> type[BaseHTTPRequestHandler]:
    root = dist.resolve()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return  # quiet: the browser fetches hundreds of files

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length", 0) or 0)
            body = self.rfile.read(length) if length else None
            request = urllib.request.Request(
                f"http://127.0.0.1:{orthanc_http_port}{self.path}", data=body, method=self.command
            )
            for name in _FORWARDED_HEADERS:
                if self.headers.get(name):
                    request.add_header(name, self.headers[name])
            try:
                with urllib.request.urlopen(request, timeout=60) as reply:
                    status, headers, payload = reply.status, reply.headers, reply.read()
            except urllib.error.HTTPError as error:
                status, headers, payload = error.code, error.headers, error.read()
            self.send_response(status)
            for name in _RETURNED_HEADERS:
                if name == "Content-Length":
                    continue
                if headers.get(name):
                    self.send_header(name, headers[name])
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _static(self) -> None:
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            if path == "/app-config.js":
                self._send(200, APP_CONFIG.read_bytes(), "text/javascript")
                return
            target = (root / path.lstrip("/")).resolve()
            if not target.is_relative_to(root) or not target.is_file():
                if "." in path.rsplit("/", 1)[-1]:
                    self._send(404, b"not found", "text/plain")
                    return
                target = root / "index.html"  # a route of the single-page app
            kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if target.suffix in {".js", ".mjs"}:
                kind = "text/javascript"
            elif target.suffix == ".wasm":
                kind = "application/wasm"
            self._send(200, target.read_bytes(), kind)

        def do_GET(self) -> None:
            if self.path.startswith("/dicom-web/"):
                self._forward()
            else:
                self._static()

        do_HEAD = do_GET

        def do_POST(self) -> None:
            self._forward()

    return Handler


@dataclass
class OhifServer:
    """The viewer and Orthanc's DICOMweb on one loopback origin."""

    port: int

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def viewer_url(
        self, study_instance_uid: str, series_instance_uid: str | None = None, only: bool = False
    ) -> str:
        """The basic viewer on one study, optionally opening one series first; with ``only``,
        OHIF loads that series alone (its ``SeriesInstanceUIDs`` filter), so what the viewer
        shows of the patient comes from that series."""
        url = f"{self.origin}/viewer?StudyInstanceUIDs={study_instance_uid}"
        if series_instance_uid:
            url += f"&initialSeriesInstanceUID={series_instance_uid}"
            if only:
                url += f"&SeriesInstanceUIDs={series_instance_uid}"
        return url


@contextmanager
def serve_ohif(orthanc_http_port: int, dist: Path | None = None) -> Iterator[OhifServer]:
    """Serve OHIF (``dist``, default :func:`ohif_dist`) and proxy Orthanc's DICOMweb."""
    port = free_port()
    server = ThreadingHTTPServer(
        ("127.0.0.1", port), _handler(dist or ohif_dist(), orthanc_http_port)
    )
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="ohif-proxy", daemon=True)
    thread.start()
    try:
        yield OhifServer(port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
