"""Forward passes of jobs that wait together run as one batch, each getting its own share."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from torch import nn

from inference.batching import ForwardBatcher, PassResult, forward_pass
from inference.loading import load_network
from inference.registry import ModelSpec

LAYER = "unet.down_4"
GATE = ["unet.conv_0", "unet.down_1"]


@pytest.fixture(scope="module")
def network(tiny_spec: ModelSpec) -> nn.Module:
    return load_network(tiny_spec, "cpu")


def _inputs(count: int, size: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return [torch.rand(1, 1, size, size, generator=generator) for _ in range(count)]


def _concurrently(batcher: ForwardBatcher, network: nn.Module, inputs: list[torch.Tensor]) -> list:
    results: list = [None] * len(inputs)
    start = threading.Barrier(len(inputs))

    def job(position: int) -> None:
        start.wait()
        try:
            results[position] = batcher.run(network, [inputs[position]], LAYER, 0, GATE)
        except Exception as error:  # noqa: BLE001 - handed to the assertion
            results[position] = error

    threads = [threading.Thread(target=job, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _assert_same(batched: PassResult, alone: PassResult) -> None:
    (explanation, features), (expected, expected_features) = batched, alone
    seg, cls = explanation.output
    assert seg.shape == expected.output[0].shape and cls.shape == expected.output[1].shape
    torch.testing.assert_close(cls, expected.output[1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(seg, expected.output[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(explanation.heatmap, expected.heatmap, atol=1e-3, rtol=1e-3)
    assert features is not None and expected_features is not None
    np.testing.assert_allclose(features, expected_features, atol=1e-4, rtol=1e-4)


def test_passes_waiting_together_run_as_one_batch(network: nn.Module, tiny_spec: ModelSpec) -> None:
    inputs = _inputs(3, tiny_spec.input_size)
    batcher = ForwardBatcher(wait_seconds=2.0, max_size=3)
    results = _concurrently(batcher, network, inputs)
    assert list(batcher.sizes) == [3]  # full at 3: it did not wait the 2 s out
    for tensor, result in zip(inputs, results, strict=True):
        assert not isinstance(result, Exception), result
        _assert_same(result, forward_pass(network, [tensor], LAYER, 0, GATE))


def test_a_batch_closes_at_max_size(network: nn.Module, tiny_spec: ModelSpec) -> None:
    batcher = ForwardBatcher(wait_seconds=0.5, max_size=2)
    results = _concurrently(batcher, network, _inputs(3, tiny_spec.input_size))
    assert sorted(batcher.sizes) == [1, 2]
    assert all(not isinstance(r, Exception) for r in results)


def test_a_lone_pass_waits_at_most_the_wait(network: nn.Module, tiny_spec: ModelSpec) -> None:
    batcher = ForwardBatcher(wait_seconds=0.2, max_size=8)
    (tensor,) = _inputs(1, tiny_spec.input_size)
    result = batcher.run(network, [tensor], LAYER, 0, GATE)
    assert list(batcher.sizes) == [1]
    _assert_same(result, forward_pass(network, [tensor], LAYER, 0, GATE))


def test_different_shapes_never_share_a_batch(network: nn.Module, tiny_spec: ModelSpec) -> None:
    size = tiny_spec.input_size
    inputs = [*_inputs(1, size), *_inputs(1, size * 2)]
    batcher = ForwardBatcher(wait_seconds=0.3, max_size=8)
    results = _concurrently(batcher, network, inputs)
    assert sorted(batcher.sizes) == [1, 1]
    assert results[1][0].output[0].shape[-1] == size * 2


def test_a_failing_batch_fails_only_the_bad_input(network: nn.Module, tiny_spec: ModelSpec) -> None:
    bad = torch.full((1, 1, tiny_spec.input_size, tiny_spec.input_size), float("nan"))

    def strict(
        net: nn.Module,
        tensors: Sequence[torch.Tensor],
        layer: str,
        index: int,
        gate_layers: Sequence[str] | None,
        tta: Sequence[str],
    ) -> PassResult:
        if torch.isnan(tensors[0]).any():
            raise ValueError("not a number in the input")
        return forward_pass(net, tensors, layer, index, gate_layers, tta)

    batcher = ForwardBatcher(wait_seconds=2.0, max_size=2, run=strict)
    good, failed = _concurrently(batcher, network, [*_inputs(1, tiny_spec.input_size), bad])
    assert isinstance(failed, ValueError)
    assert not isinstance(good, Exception)
    assert list(batcher.sizes) == [1]  # the batch of 2 failed; the good input ran alone


def test_no_wait_runs_each_pass_alone(network: nn.Module, tiny_spec: ModelSpec) -> None:
    batcher = ForwardBatcher(wait_seconds=0.0, max_size=8)
    assert not batcher.batching
    results = _concurrently(batcher, network, _inputs(2, tiny_spec.input_size))
    assert list(batcher.sizes) == [1, 1]
    assert all(not isinstance(r, Exception) for r in results)


def test_a_batch_with_test_time_augmentation_equals_each_input_alone(
    network: nn.Module, tiny_spec: ModelSpec
) -> None:
    inputs = _inputs(2, tiny_spec.input_size)
    batcher = ForwardBatcher(wait_seconds=2.0, max_size=2)
    results: list = [None, None]
    start = threading.Barrier(2)

    def job(position: int) -> None:
        start.wait()
        results[position] = batcher.run(network, [inputs[position]], LAYER, 0, GATE, ["hflip"])

    threads = [threading.Thread(target=job, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert list(batcher.sizes) == [2]
    for tensor, result in zip(inputs, results, strict=True):
        _assert_same(result, forward_pass(network, [tensor], LAYER, 0, GATE, ["hflip"]))
    plain = forward_pass(network, [inputs[0]], LAYER, 0, GATE)
    assert not torch.allclose(plain[0].output[1], results[0][0].output[1])  # the flip counted
