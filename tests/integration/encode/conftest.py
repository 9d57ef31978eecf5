"""Fixtures for the validator runs: phantom sources and the predictions made on them."""

from tests.support.encode_fixtures import make_prediction, phantom, roundtrip_fixture, spec

__all__ = ["make_prediction", "phantom", "roundtrip_fixture", "spec"]
