"""Helpers shared by the network tests: a few optimiser steps, a state_dict round trip."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import pytest
import torch
from torch import nn


def _class_logits(output: object) -> torch.Tensor:
    return output[1] if isinstance(output, tuple) else output  # type: ignore[return-value,index]


def _loss(
    network: nn.Module, inputs: Sequence[torch.Tensor | None], labels: torch.Tensor
) -> torch.Tensor:
    # the same dropout masks before and after training, so the losses compare
    torch.manual_seed(123)
    logits = _class_logits(network(*inputs))
    return nn.functional.binary_cross_entropy_with_logits(logits, labels)


def train_loss_drop(
    network: nn.Module,
    inputs: Sequence[torch.Tensor | None],
    labels: torch.Tensor,
    steps: int = 3,
    learning_rate: float = 1e-4,
) -> tuple[float, float]:
    """(loss before, loss after) ``steps`` Adam steps on one tiny batch, in train mode."""
    network.train()
    optimiser = torch.optim.Adam(network.parameters(), lr=learning_rate)
    with torch.no_grad():
        before = float(_loss(network, inputs, labels))
    for _ in range(steps):
        optimiser.zero_grad()
        _loss(network, inputs, labels).backward()
        optimiser.step()
    with torch.no_grad():
        after = float(_loss(network, inputs, labels))
    return before, after


def round_trip(network: nn.Module, factory: Callable[[], nn.Module]) -> nn.Module:
    """A fresh network from ``factory`` loaded with ``network``'s state_dict through bytes."""
    buffer = io.BytesIO()
    torch.save(network.state_dict(), buffer)
    buffer.seek(0)
    fresh = factory()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    return fresh.eval()


@pytest.fixture
def loss_drop() -> Callable[..., tuple[float, float]]:
    """:func:`train_loss_drop`."""
    return train_loss_drop


@pytest.fixture
def reload() -> Callable[[nn.Module, Callable[[], nn.Module]], nn.Module]:
    """:func:`round_trip`."""
    return round_trip


def alternating_labels(count: int) -> torch.Tensor:
    """Targets ``[count,1]``: benign, malignant, benign, ...

    Train-mode batch norm needs a batch of about 8 for the loss to fall steadily.
    """
    return (torch.arange(count) % 2).float()[:, None]


@pytest.fixture
def labels() -> Callable[[int], torch.Tensor]:
    """:func:`alternating_labels`."""
    return alternating_labels
