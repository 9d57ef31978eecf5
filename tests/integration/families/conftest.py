"""Fixtures for multi-family pipeline tests: one models folder with a tiny model of each family."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db import model_versions
from tests.support.family_models import package_family_model

FAMILY_KEYS = {
    "segcls": "tiny-ynet",
    "dual": "tiny-dual",
    "video": "tiny-video",
    "ceus": "tiny-ceus",
}
"""The families the pipeline tests enable, by model key."""


@pytest.fixture(scope="module")
def family_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding tiny-ynet, tiny-dual, tiny-video and tiny-ceus (read only)."""
    root = tmp_path_factory.mktemp("family-models")
    for family, key in FAMILY_KEYS.items():
        package_family_model(root / key, family, key=key)
    return root


def enable_all(sessions: sessionmaker[Session]) -> list[str]:
    """Enable every registered model version; returns their ``key@version``."""
    with sessions.begin() as session:
        rows = model_versions.version_rows(session)
        for row in rows:
            model_versions.enable(session, row, actor="test")
        return [f"{row.model_key}@{row.version}" for row in rows]
