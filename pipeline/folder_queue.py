"""The embedded profile's folder queue: kombu's filesystem transport, with atomic messages.

kombu's filesystem transport creates a message file and then writes it; a consumer polling the
folder at that moment moves the still empty file away, fails to decode it and the worker stops
with the message lost (seen with two workers polling every 50 ms: the job waited for the
sweeper's re-send, 300 s). Here a message is written and fsynced in a staging folder and
renamed into the queue folder (``kernel.spool.replace_file``, 0600), so a consumer only ever
sees complete messages.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps

from kernel.spool import replace_file

#: the broker URL scheme of this transport (``filesystem://`` settings map to it)
SCHEME = "lnmfolder"


class Channel(filesystem.Channel):
    """A filesystem channel whose messages appear in the queue folder whole."""

    def _put(self, queue: str, payload: object, **kwargs: object) -> None:
        """Write the message in the staging folder, then rename it into the queue folder."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        staging = Path(self.transport_options["staging_folder"])
        data = dumps(payload).encode()
        try:
            replace_file(
                Path(self.data_folder_out) / name, lambda handle: handle.write(data), staging
            )
        except OSError as exc:
            raise ChannelError(f"cannot add message {name!r} to the queue folder") from exc


class Transport(filesystem.Transport):
    """kombu's filesystem transport with :class:`Channel`."""

    Channel = Channel

    @property
    def default_connection_params(self) -> dict[str, object]:
        """No host name: the queue is a folder (with kombu's default, 'localhost', every
        connection logged a warning that none was supplied)."""
        return {"port": self.default_port}


TRANSPORT_ALIASES[SCHEME] = f"{__name__}:Transport"
