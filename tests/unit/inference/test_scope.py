"""Routing rules: which study a model runs on (inference.scope, pure)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from inference.scope import (
    BREAST_RULE,
    LYMPH_NODE_RULE,
    ScopeRule,
    SeriesAttributes,
    decide,
    parse_rule,
    series_attributes,
    series_matches,
)


def _series(**fields: object) -> SeriesAttributes:
    return SeriesAttributes(**{"modality": "US", **fields})  # type: ignore[arg-type]


def test_breast_rule_accepts_body_part_region_code_or_description() -> None:
    assert series_matches(BREAST_RULE, _series(body_part="BREAST"))
    assert series_matches(BREAST_RULE, _series(region_codes=frozenset({"SCT:76752008"})))
    assert series_matches(BREAST_RULE, _series(descriptions=("US Breast left", "", "")))
    assert series_matches(BREAST_RULE, _series(descriptions=("", "", "MAMMARY PROTOCOL")))


def test_breast_rule_refuses_other_anatomy_and_undescribed_series() -> None:
    assert not series_matches(BREAST_RULE, _series(body_part="PELVIS"))
    assert not series_matches(BREAST_RULE, _series(descriptions=("US PELVIS GYNAECOLOGY", "", "")))
    assert not series_matches(BREAST_RULE, _series())
    assert not series_matches(BREAST_RULE, _series(modality="CT", body_part="BREAST"))


def test_lymph_node_rule_accepts_neck_axilla_or_lymph_node_description() -> None:
    assert series_matches(LYMPH_NODE_RULE, _series(body_part="NECK"))
    assert series_matches(LYMPH_NODE_RULE, _series(body_part="AXILLA"))
    assert series_matches(LYMPH_NODE_RULE, _series(descriptions=("SYNTHETIC LYMPH NODE PHANTOM",)))
    assert not series_matches(LYMPH_NODE_RULE, _series(body_part="BREAST"))


def test_source_conditions_must_all_hold() -> None:
    rule = ScopeRule(calling_ae=["US1"], station=r"^BREAST-", manufacturer="(?i)ge")
    ok = _series(calling_ae="US1", station="BREAST-3", manufacturer="GE Healthcare")
    assert series_matches(rule, ok)
    assert not series_matches(
        rule, _series(calling_ae="US2", station="BREAST-3", manufacturer="GE")
    )
    assert not series_matches(rule, _series(calling_ae="US1", station="NECK-1", manufacturer="GE"))


def test_empty_rule_matches_every_study_and_reads_all() -> None:
    assert ScopeRule().text() == "all"
    assert parse_rule("all") == ScopeRule()
    assert decide("m@1", ScopeRule(), "site", []).run


def test_study_matches_when_one_series_does_and_reason_names_what_it_saw() -> None:
    gyn = _series(body_part="PELVIS", descriptions=("US PELVIS GYNAECOLOGY",))
    breast = _series(body_part="BREAST")
    assert decide("ynet-busi@1.0.0", BREAST_RULE, "spec", [gyn, breast]).run
    refused = decide("ynet-busi@1.0.0", BREAST_RULE, "spec", [gyn])
    assert not refused.run
    assert "PELVIS" in refused.reason and "spec rule" in refused.reason
    assert refused.rule == BREAST_RULE.text()


def test_parse_rule_reads_pairs_json_and_round_trips_text() -> None:
    rule = parse_rule("modality=US;body_part=breast,axilla;description=(?i)breast")
    assert rule.body_part == ["BREAST", "AXILLA"]
    assert parse_rule(rule.text()) == rule
    assert parse_rule('{"body_part": ["NECK"]}') == ScopeRule(body_part=["NECK"])
    assert parse_rule(BREAST_RULE.text()) == BREAST_RULE


@pytest.mark.parametrize(
    "text", ["", "colour=red", "description=([", "region_codes=76752008", "body_part"]
)
def test_parse_rule_refuses_bad_text_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rule(text)


@pytest.mark.parametrize(
    ("text", "told"),
    [
        ("body_part=", "give body_part a value"),
        ("modality=US;description=", "give description a value"),
        ("modality=,", "give modality a value"),
        ("{}", "has no condition: write 'all'"),
        (";", "has no condition: write 'all'"),
    ],
)
def test_parse_rule_a_condition_without_value_is_refused_not_dropped(text: str, told: str) -> None:
    """`body_part=` became the empty rule: the model then ran on every study, any modality."""
    with pytest.raises(ValueError, match=told):
        parse_rule(text)


def test_series_attributes_read_header_codes_and_calling_ae() -> None:
    ds = Dataset()
    ds.Modality = "US"
    ds.BodyPartExamined = "BREAST "
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "76752008", "SCT", "Breast"
    ds.AnatomicRegionSequence = [code]
    ds.StudyDescription = "US BREAST"
    attributes = series_attributes(ds, "us1")
    assert attributes.body_part == "BREAST"
    assert attributes.region_codes == frozenset({"SCT:76752008"})
    assert attributes.calling_ae == "US1"
    assert attributes.descriptions[0] == "US BREAST"


def test_series_attributes_multi_valued_description_one_text_matched_and_shown() -> None:
    """A backslash in a description makes it two values: before, the reason showed the Python
    list "['BREAST', 'LEFT US']"."""
    ds = Dataset()
    ds.Modality = "US"
    ds.StudyDescription = "BREAST\\LEFT US"
    attributes = series_attributes(ds, None)
    assert attributes.descriptions[0] == "BREAST LEFT US"
    assert "[" not in attributes.summary()
