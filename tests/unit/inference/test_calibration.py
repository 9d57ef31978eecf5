"""The one function that turns the network's probability into the reported one."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from inference.calibration import calibrate, logits_of
from inference.registry import Calibration, ModelSpec, OperatingPoint, parse_policy
from tests.support.models import spec_fields


def test_calibrate_none_returns_network_probability_unchanged() -> None:
    p = np.array([0.01, 0.3, 0.97])
    assert np.array_equal(calibrate(None, p), p)
    assert np.array_equal(calibrate(Calibration(), p), p)


def test_calibrate_temperature_divides_the_logit() -> None:
    calibration = Calibration(method="temperature", temperature=2.0)
    p = np.array([0.1, 0.5, 0.9, 1.0 - 1e-9])
    expected = 1.0 / (1.0 + np.exp(-logits_of(p) / 2.0))
    assert np.allclose(calibrate(calibration, p), expected)
    assert calibrate(calibration, 0.5) == pytest.approx(0.5)
    assert calibrate(calibration, 0.9) == pytest.approx(0.75)  # logit ln 9 halved: 3/(3+1)
    assert np.all(np.isfinite(calibrate(calibration, np.array([0.0, 1.0]))))


def test_calibrate_isotonic_interpolates_between_knots_and_clips_beyond() -> None:
    calibration = Calibration(method="isotonic", points=[(0.2, 0.0), (0.6, 0.5), (0.8, 1.0)])
    got = calibrate(calibration, np.array([0.0, 0.4, 0.7, 0.95]))
    assert np.allclose(got, [0.0, 0.25, 0.75, 1.0])


@pytest.mark.parametrize(
    "fields",
    [
        {"method": "temperature"},
        {"method": "none", "temperature": 1.5},
        {"method": "temperature", "temperature": -1.0},
        {"method": "isotonic", "points": [(0.5, 0.2)]},
        {"method": "isotonic", "points": [(0.5, 0.6), (0.4, 0.7)]},
        {"method": "isotonic", "points": [(0.1, 0.6), (0.4, 0.2)]},
        {"method": "platt", "temperature": 1.0},
    ],
)
def test_calibration_inconsistent_parameters_refused(fields: dict) -> None:
    with pytest.raises(ValidationError):
        Calibration(**fields)


def test_parse_policy_reads_youden_sensitivity_specificity_and_refuses_others() -> None:
    assert parse_policy("youden") == ("youden", None)
    assert parse_policy(" Sensitivity=0.90 ") == ("sensitivity", 0.9)
    assert parse_policy("specificity=.95") == ("specificity", 0.95)
    for bad in ("sensitivity=1.5", "sensitivity=0", "f1", "sensitivity=", "youden=0.5"):
        with pytest.raises(ValueError):
            parse_policy(bad)


def test_spec_without_calibration_fields_loads_and_one_with_them_round_trips(tmp_path) -> None:
    plain = ModelSpec.model_validate(spec_fields())
    assert plain.calibration is None and plain.operating_point is None
    fields = spec_fields(
        threshold=0.31,
        calibration={"method": "temperature", "temperature": 1.7, "fitted_on": "inner validation",
                     "figures": {"ece_before": 0.2, "ece_after": 0.05}},
        operating_point={"policy": "sensitivity=0.90", "chosen_on": "inner validation",
                         "figures": {"sensitivity": 0.92, "specificity": 0.7}},
    )  # fmt: skip
    spec = ModelSpec.model_validate(fields)
    spec.save(tmp_path)
    assert ModelSpec.load(tmp_path).model_dump() == spec.model_dump()
    assert spec.operating_point == OperatingPoint(**fields["operating_point"])


def test_spec_operating_point_threshold_must_match_the_spec_threshold() -> None:
    point = {"policy": "youden", "chosen_on": "x", "figures": {"threshold": 0.4}}
    with pytest.raises(ValidationError, match="one source"):
        ModelSpec.model_validate(spec_fields(threshold=0.3, operating_point=point))
    ModelSpec.model_validate(spec_fields(threshold=0.4, operating_point=point))
    with pytest.raises(ValidationError):
        ModelSpec.model_validate(
            spec_fields(operating_point={"policy": "accuracy", "chosen_on": "x"})
        )
