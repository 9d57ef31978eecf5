"""Connections that never send an A-ASSOCIATE-RQ (dicom_node.admission): capped, each closed
after the short ARTIM timeout, and holding no thread beyond the cap."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest

from dicom_node import statuses
from dicom_node.scu import echo
from tests.integration.dicom_node.helpers import CALLING_AE, Node
from tests.support.network import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@contextmanager
def _idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
            sockets.append(sock)
        yield sockets


def _closed_by_peer(sock: socket.socket, within: float) -> bool:
    """True when the peer closes ``sock`` within ``within`` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_scp_idle_connections_capped_closed_after_artim_no_thread_each(
    make_node: Callable[..., Node],
) -> None:
    node = make_node(max_unassociated_connections=4, association_request_timeout_seconds=1)
    before = threading.active_count()
    with _idle_connections(node.port, 60) as sockets:
        time.sleep(0.5)  # let the server accept them all
        held = threading.active_count() - before
        assert held <= 2 * 4 + 2, f"{held} threads for 60 idle connections"
        started = time.monotonic()
        closed = [_closed_by_peer(sock, within=5) for sock in sockets]
        assert all(closed)
        assert time.monotonic() - started < 4  # the cap at once, the rest at the ARTIM timeout
    wait_until(lambda: node.server.unassociated == 0, timeout=5, what="every slot given back")
    assert echo(node.destination, CALLING_AE) == statuses.SUCCESS


def test_scp_associations_give_their_slot_back(make_node: Callable[..., Node]) -> None:
    node = make_node(max_unassociated_connections=2)
    for _ in range(6):  # more associations in a row than the cap
        assert echo(node.destination, CALLING_AE) == statuses.SUCCESS
    wait_until(lambda: node.server.unassociated == 0, timeout=5, what="every slot given back")


def test_scp_idle_connections_take_no_association_place(make_node: Callable[..., Node]) -> None:
    node = make_node(
        max_associations=2, max_unassociated_connections=4, association_request_timeout_seconds=5
    )
    with _idle_connections(node.port, 3):  # more than max_associations, fewer than the cap
        time.sleep(0.3)
        assert echo(node.destination, CALLING_AE) == statuses.SUCCESS
