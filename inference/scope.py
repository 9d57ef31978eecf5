"""Which study a model runs on: routing rules on DICOM attributes (pure, no I/O).

A :class:`ScopeRule` is written on attributes of a study's series: Modality, BodyPartExamined,
AnatomicRegionSequence codes, StudyDescription / SeriesDescription / ProtocolName (regular
expressions), the calling AE title, StationName and Manufacturer.

How a rule matches one series (:func:`series_matches`):

- the *source* conditions (``modality``, ``calling_ae``, ``station``, ``manufacturer``) must each
  hold when given;
- of the *anatomy* conditions (``body_part``, ``region_codes``, ``description``) at least one
  must hold when any is given: a breast rule accepts BodyPartExamined BREAST, or the SNOMED code
  of the breast, or a description that says breast.

A study matches when one of its series does. A rule with no condition at all matches every
study (``all``). Model specs carry the default rule (``ModelSpec.scope``); a site's override
lives in the database (``db/scope.py``) and changes only through ``lnm-node scope set``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydicom.multival import MultiValue

ALL = "all"
"""The rule text that matches every study."""

_REGION_RE = r"^[A-Za-z0-9._-]+:[A-Za-z0-9._-]+$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _compiles(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"{value!r} is not a regular expression: {error}") from error
    return value


class ScopeRule(_Frozen):
    """A routing rule; empty lists and ``None`` mean "no condition" (module docstring)."""

    modality: list[str] = Field(default_factory=list)
    body_part: list[str] = Field(default_factory=list)
    region_codes: list[str] = Field(default_factory=list)
    description: str | None = None
    calling_ae: list[str] = Field(default_factory=list)
    station: str | None = None
    manufacturer: str | None = None

    @field_validator("modality", "body_part", "calling_ae")
    @classmethod
    def _upper(cls, values: list[str]) -> list[str]:
        return [v.strip().upper() for v in values if v.strip()]

    @field_validator("region_codes")
    @classmethod
    def _codes(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.match(_REGION_RE, value):
                raise ValueError(f"region code {value!r} must be SCHEME:VALUE, e.g. SCT:76752008")
        return values

    @field_validator("description", "station", "manufacturer")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _compiles(value)

    @property
    def matches_all(self) -> bool:
        """True for the rule without conditions."""
        return self == ScopeRule()

    def text(self) -> str:
        """The rule as ``lnm-node scope set --rule`` reads it (``all`` for the empty rule)."""
        if self.matches_all:
            return ALL
        parts = []
        for name, value in self.model_dump(exclude_defaults=True).items():
            parts.append(f"{name}={','.join(value) if isinstance(value, list) else value}")
        return ";".join(parts)


class GateSpec(_Frozen):
    """The out-of-domain gate of a model: a reference of its training distribution.

    ``method`` mahalanobis: the distance of an input's pooled features at ``layers`` (per
    layer, the mean and standard deviation of its output per channel, concatenated over the
    layers) to the mean of the training features,
    under their shrunk covariance (Ledoit-Wolf). ``reference`` is the file (beside the weights)
    holding mean and precision; an input scoring above ``threshold`` is declined.
    """

    method: str = Field(pattern=r"^mahalanobis$")
    layers: list[str] = Field(min_length=1)
    reference: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    reference_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    threshold: float = Field(gt=0.0)
    fitted_on: str = Field(min_length=1)
    figures: dict[str, float] = Field(default_factory=dict)


class ModelScope(_Frozen):
    """A model's default scope: its routing rule and its gate (``None``: no gate)."""

    rule: ScopeRule = Field(default_factory=ScopeRule)
    gate: GateSpec | None = None


BREAST_RULE = ScopeRule(
    modality=["US"],
    body_part=["BREAST"],
    region_codes=["SCT:76752008", "SCT:80248007", "SCT:73056007"],
    description=r"(?i)\b(breast|mamm\w*)\b",
)
"""Breast: BodyPartExamined BREAST, SNOMED breast (76752008, left 80248007, right 73056007)."""

LYMPH_NODE_RULE = ScopeRule(
    modality=["US"],
    body_part=["NECK", "AXILLA"],
    region_codes=["SCT:45048000", "SCT:91470000", "SCT:59441001"],
    description=r"(?i)\b(neck|axilla\w*|lymph\s*nodes?|cervical\s+nodes?)\b",
)
"""Neck or axilla (SNOMED 45048000, 91470000), lymph node (59441001), or such a description."""


def parse_rule(text: str) -> ScopeRule:
    """A rule from ``all``, a JSON object, or ``name=value;name=value`` (lists comma-separated).

    Raises ``ValueError`` naming what is wrong.
    """
    stripped = text.strip()
    if stripped.lower() == ALL:
        return ScopeRule()
    if stripped.startswith("{"):
        rule = ScopeRule.model_validate(json.loads(stripped))
    else:
        values: dict[str, object] = {}
        lists = {"modality", "body_part", "region_codes", "calling_ae"}
        for part in filter(None, (p.strip() for p in stripped.split(";"))):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or name not in ScopeRule.model_fields:
                raise ValueError(
                    f"{part!r}: write name=value with a name of {', '.join(ScopeRule.model_fields)}"
                )
            items = [v.strip() for v in value.split(",")] if name in lists else [value.strip()]
            if not any(items):  # `body_part=` would drop the condition: every study would match
                raise ValueError(f"{part!r}: give {name} a value, or leave the condition out")
            values[name] = [v for v in items if v] if name in lists else items[0]
        rule = ScopeRule.model_validate(values)
    if rule.matches_all:
        raise ValueError(f"{text.strip()!r} has no condition: write 'all' to match every study")
    return rule


@dataclass(frozen=True)
class SeriesAttributes:
    """The attributes of one series (from one of its instances) a rule reads."""

    modality: str = ""
    body_part: str = ""
    region_codes: frozenset[str] = field(default_factory=frozenset)
    descriptions: tuple[str, ...] = ()
    calling_ae: str = ""
    station: str = ""
    manufacturer: str = ""

    def summary(self) -> str:
        """A short description for reasons: modality, body part, codes, descriptions."""
        described = " / ".join(d for d in self.descriptions if d) or "-"
        codes = ",".join(sorted(self.region_codes)) or "-"
        return (
            f"{self.modality or '-'}, body part {self.body_part or '-'}, region {codes}, "
            f"description {described!r}"
        )


def series_attributes(header: object, calling_ae: str | None = None) -> SeriesAttributes:
    """The rule's attributes of a pydicom dataset (a header is enough)."""

    def text(keyword: str) -> str:
        value = getattr(header, keyword, None)
        if isinstance(value, MultiValue):  # "BREAST\\LEFT US": matched and shown as one text
            return " ".join(str(v).strip() for v in value if str(v).strip())
        return "" if value is None else str(value).strip()

    codes = frozenset(
        f"{getattr(item, 'CodingSchemeDesignator', '')}:{getattr(item, 'CodeValue', '')}"
        for item in (getattr(header, "AnatomicRegionSequence", None) or [])
    )
    return SeriesAttributes(
        modality=text("Modality").upper(),
        body_part=text("BodyPartExamined").upper(),
        region_codes=codes,
        descriptions=tuple(
            text(k) for k in ("StudyDescription", "SeriesDescription", "ProtocolName")
        ),
        calling_ae=(calling_ae or "").strip().upper(),
        station=text("StationName"),
        manufacturer=text("Manufacturer"),
    )


def _search(pattern: str | None, value: str) -> bool:
    return pattern is not None and re.search(pattern, value) is not None


def series_matches(rule: ScopeRule, series: SeriesAttributes) -> bool:
    """Whether ``rule`` accepts one series (module docstring)."""
    source = (
        (not rule.modality or series.modality in rule.modality)
        and (not rule.calling_ae or series.calling_ae in rule.calling_ae)
        and (rule.station is None or _search(rule.station, series.station))
        and (rule.manufacturer is None or _search(rule.manufacturer, series.manufacturer))
    )
    if not source:
        return False
    anatomy_given = bool(rule.body_part or rule.region_codes or rule.description is not None)
    if not anatomy_given:
        return True
    return (
        series.body_part in rule.body_part
        or bool(series.region_codes & set(rule.region_codes))
        or any(_search(rule.description, d) for d in series.descriptions if d)
    )


@dataclass(frozen=True)
class ScopeVerdict:
    """Whether a model runs on a study, by which rule, and why."""

    model_key: str
    run: bool
    rule: str
    source: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model_key,
            "run": self.run,
            "rule": self.rule,
            "source": self.source,
            "reason": self.reason,
        }


def decide(
    model_key: str, rule: ScopeRule, source: str, series: Iterable[SeriesAttributes]
) -> ScopeVerdict:
    """The verdict of ``rule`` (from ``source``: "spec" or "site") on a study's series."""
    listed = list(series)
    text = rule.text()
    if rule.matches_all:
        return ScopeVerdict(model_key, True, text, source, "the rule matches every study")
    matched = next((s for s in listed if series_matches(rule, s)), None)
    if matched is not None:
        return ScopeVerdict(model_key, True, text, source, f"series matches: {matched.summary()}")
    seen = "; ".join(sorted({s.summary() for s in listed})) or "no readable series"
    return ScopeVerdict(
        model_key, False, text, source, f"no series matches the {source} rule ({seen})"
    )
