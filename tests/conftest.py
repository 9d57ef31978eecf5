"""Fixtures for every test: what one test configures globally does not reach the next."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def restore_root_logging() -> Iterator[None]:
    """Put the root logger back as it was after each test.

    A CLI command run in process (``CliRunner``) configures logging as its entry point does
    (``kernel.logging_setup.configure_logging``): a handler on that invocation's captured
    stderr, level INFO. Left in place, it writes into the next invocation's output and onto
    closed streams.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)
