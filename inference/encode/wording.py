"""How the call and the algorithm parameters read, in the SR and on the status page alike."""

from __future__ import annotations

THRESHOLD_PARAMETER = "threshold"
WEIGHTS_PARAMETER = "weights sha256"
OPERATING_POINT_PARAMETER = "operating point"
CALIBRATION_PARAMETER = "calibration"


def percent(probability: float) -> float:
    """A probability in [0, 1] as a percentage rounded to 0.1 (what the SR writes)."""
    return round(100.0 * float(probability), 1)


def call_text(concept: str, value: str, threshold: float) -> str:
    """The call in words, e.g. "Metastasis: present (threshold 28.5 %)": short enough for a
    viewer's measurement label.

    Parameters
    ----------
    concept
        Meaning of the concept the call is made on (the spec's ``outputs.finding.call``).
    value
        Meaning of the call's value ("Present", "Absent", "Undetermined").
    threshold
        The probability threshold in [0, 1] the call was made at.
    """
    return f"{concept}: {value.lower()} (threshold {percent(threshold):.1f} %)"


def parameter_text(name: str, value: object) -> str:
    """One Algorithm Parameters (111002) text: ``name=value``."""
    return f"{name}={value}"


def parse_parameters(texts: list[str]) -> dict[str, str]:
    """``name=value`` texts back as a mapping (texts without ``=`` are left out)."""
    return dict(text.split("=", 1) for text in texts if "=" in text)


def calibration_text(method: str, temperature: float | None, knots: int | None) -> str:
    """How the probability was calibrated, e.g. "temperature T=1.832" or "isotonic 14 knots"."""
    if temperature is not None:
        return f"{method} T={temperature:.4g}"
    if knots is not None:
        return f"{method} {knots} knots"
    return method
