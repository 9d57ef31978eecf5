"""An ensemble of networks of one architecture that answers in its members' output form.

Each output tensor of the members (a segcls member's segmentation and class logits, a
classifier's class logit) is combined as the mean of the members' probabilities (sigmoids),
returned as the logit of that mean, so everything that reads a member's output (the runner,
``lnm-node evaluate``, the trainer's ``predict``) reads the ensemble's unchanged. The same
combination averages test-time augmentations (``inference.tta``).

The members live under ``members.<i>.``: one state_dict, one weights file, one sha256.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

NetworkOutput = torch.Tensor | tuple[torch.Tensor, ...]


def mean_probability_logit(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """``logit(mean_i sigmoid(logits[i]))``, computed in log space (exact, no clamping)."""
    stacked = torch.stack([t.float() for t in logits])
    positive = torch.logsumexp(nn.functional.logsigmoid(stacked), dim=0)
    negative = torch.logsumexp(nn.functional.logsigmoid(-stacked), dim=0)
    return positive - negative  # the log of the count cancels


def average_outputs(outputs: Sequence[NetworkOutput]) -> NetworkOutput:
    """Combine network outputs of one form: each tensor position by :func:`mean_probability_logit`."""
    if not outputs:
        raise ValueError("no outputs to average")
    if len(outputs) == 1:
        return outputs[0]
    first = outputs[0]
    if isinstance(first, torch.Tensor):
        return mean_probability_logit(outputs)  # type: ignore[arg-type]
    return tuple(
        mean_probability_logit([output[at] for output in outputs])  # type: ignore[index]
        for at in range(len(first))
    )


def member_layer(member: int, layer: str) -> str:
    """The module name of a member's ``layer`` inside an :class:`Ensemble`."""
    return f"members.{member}.{layer}"


class Ensemble(nn.Module):
    """``members`` run on the same inputs; the output is :func:`average_outputs` of theirs."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, not {len(members)}")
        self.members = nn.ModuleList(members)

    def forward(self, *inputs: torch.Tensor | None) -> NetworkOutput:
        return average_outputs([member(*inputs) for member in self.members])

    @property
    def min_size(self) -> int:
        """The largest of the members' smallest input sizes."""
        return max(getattr(m, "min_size", 16) for m in self.members)

    @property
    def gradcam_layer(self) -> str:
        """The members' Grad-CAM layer, relative to each member (``inference.gradcam``)."""
        return str(getattr(self.members[0], "gradcam_layer", ""))
