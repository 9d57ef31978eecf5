"""Exceptions that carry policy: what the caller should do about them."""

from __future__ import annotations


class NodeError(Exception):
    """Base class of the node's own errors."""


class InvalidInput(NodeError):
    """Permanent: the input cannot be used; do not retry. Keep the reason."""


class DatasetError(InvalidInput, ValueError):
    """A dataset given to an admin command cannot be used as it is (no labels.csv, a missing
    column or a bad label, files changed since it was frozen); the message says what to fix.
    The CLI prints it in one line and exits 1."""


class TransientError(NodeError):
    """Temporary: retry later (peer down, database busy, disk momentarily full).

    ``retry_after``: seconds the peer asked us to wait before the next try (HTTP
    ``Retry-After``), or ``None``.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BrokerUnavailable(TransientError):
    """The message broker a process starts on cannot be reached (server down, wrong URL); the
    message names it without its password."""


class DatabaseUnavailable(TransientError):
    """The database a process starts on cannot be reached or used (server down, wrong host,
    credentials refused); the message names it without its password."""


class DeviceUnavailable(NodeError):
    """The configured compute device is not usable on this host (``cuda`` without a working
    NVIDIA driver, a GPU index beyond those present)."""


class PeerRejected(NodeError):
    """A DICOM peer answered with a failure status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(f"{message} (status 0x{status:04X})")
        self.status = status


class EncodeError(NodeError):
    """Building or validating an output object failed: a bug, alert a human."""
