"""The embedded folder queue: a message reaches the queue folder whole, through staging."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from kernel.settings import Settings
from pipeline.celery_app import enqueue, make_celery
from pipeline.folder_queue import Transport


def test_a_message_is_staged_then_renamed_whole_into_the_queue_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_celery(Settings(home=tmp_path))
    with caplog.at_level(logging.WARNING, logger="kombu"):
        enqueue(app, 42)
    assert not caplog.records  # kombu warned "No hostname was supplied" on every connection
    queue = tmp_path / "queue"
    (message,) = os.listdir(queue / "messages")
    assert message.endswith(".lnm.msg") and os.listdir(queue / "staging") == []
    assert stat.S_IMODE((queue / "messages" / message).stat().st_mode) == 0o600
    folders = [queue, *(queue / sub for sub in ("messages", "processed", "control", "staging"))]
    assert {str(f): stat.S_IMODE(f.stat().st_mode) for f in folders} == {
        str(f): 0o700 for f in folders
    }
    with app.connection_for_read() as connection:
        assert isinstance(connection.transport, Transport)
        received = connection.SimpleQueue("lnm").get(timeout=5)
        assert received.payload[0] == [42]
        received.ack()
    assert os.listdir(queue / "messages") == []
