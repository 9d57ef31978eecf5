"""The ``lnm-node send`` stage: C-STORE files and folders of DICOM files to a peer."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dicom_node.scu import StoreResult, store_files
from kernel.settings import Destination


@dataclass(frozen=True)
class SendReport:
    """Per-file results of one send, in the order the files were collected."""

    results: list[StoreResult]

    @property
    def sent(self) -> int:
        """How many files the peer stored (success or warning)."""
        return sum(result.ok for result in self.results)

    @property
    def failed(self) -> list[StoreResult]:
        """Files not sent or refused by the peer."""
        return [result for result in self.results if not result.ok]


def collect_files(paths_or_folders: Iterable[Path]) -> list[Path]:
    """Files named directly plus every regular file below named folders (sorted; no hidden
    files and no ``DICOMDIR``: a media directory indexes the instances of an export, PS3.10,
    and is not itself stored).

    Raises ``FileNotFoundError`` for a path that does not exist.
    """
    files: list[Path] = []
    for item in map(Path, paths_or_folders):
        if item.is_dir():
            files.extend(
                path
                for path in sorted(item.rglob("*"))
                if path.is_file()
                and path.name.upper() != "DICOMDIR"
                and not any(part.startswith(".") for part in path.relative_to(item).parts)
            )
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"{item} does not exist")
    return list(dict.fromkeys(files))


def send_paths(
    destination: Destination,
    paths_or_folders: Iterable[Path],
    calling_ae_title: str,
    timeout: float = 30,
    tls: ssl.SSLContext | None = None,
) -> SendReport:
    """Send every DICOM file found to ``destination`` over one association (DICOM TLS with
    ``tls``, see :func:`dicom_node.tls.client_context_for`).

    Non-DICOM files are reported (status None), refusals are reported with the peer's status;
    neither stops the send. Raises TransientError when the association fails.
    """
    files = collect_files(paths_or_folders)
    return SendReport(store_files(destination, files, calling_ae_title, timeout, tls=tls))
