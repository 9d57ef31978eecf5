"""kernel.provenance: the node's own results are told from acquisitions."""

from __future__ import annotations

from inference.encode.outputs import build_outputs
from kernel.provenance import is_node_result
from tests.support.predictions import model_spec, phantom_source, prediction_for


def test_is_node_result_every_output_yes_source_and_phantom_no() -> None:
    source, mask = phantom_source(seed=3)
    outputs = build_outputs(prediction_for(source, mask), source, 1, spec=model_spec())
    assert sorted(role for role, output in outputs.items() if is_node_result(output)) == [
        "heatmap",
        "seg",
        "sr",
    ]
    assert str(source.Manufacturer) == "lnm-node phantom"
    assert not is_node_result(source)
    del source.Manufacturer
    assert not is_node_result(source)
