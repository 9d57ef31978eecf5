"""The ensemble network: members' probabilities averaged, answered in a member's output form."""

from __future__ import annotations

import pytest
import torch

from inference.networks.ensemble import Ensemble, average_outputs, mean_probability_logit
from inference.networks.ynet import YNet


def test_mean_probability_logit_is_logit_of_mean_probability_even_at_extremes() -> None:
    logits = [torch.tensor([[-40.0], [0.3], [12.0]]), torch.tensor([[-38.0], [-1.2], [30.0]])]
    combined = mean_probability_logit(logits)
    mean = (torch.sigmoid(logits[0].double()) + torch.sigmoid(logits[1].double())) / 2
    assert torch.allclose(torch.sigmoid(combined.double()), mean, rtol=1e-6, atol=0)
    assert torch.isfinite(combined).all()


def test_ensemble_probability_and_segmentation_are_members_means() -> None:
    torch.manual_seed(0)
    members = [YNet(features=(4, 4, 8, 8, 16, 4)).eval() for _ in range(3)]
    ensemble = Ensemble(members).eval()
    x = torch.randn(2, 1, 32, 32)

    with torch.no_grad():
        seg, cls = ensemble(x)
        outputs = [member(x) for member in members]

    assert seg.shape == (2, 1, 32, 32) and cls.shape == (2, 1)
    expected_cls = torch.stack([torch.sigmoid(o[1]) for o in outputs]).mean(dim=0)
    expected_seg = torch.stack([torch.sigmoid(o[0]) for o in outputs]).mean(dim=0)
    assert torch.allclose(torch.sigmoid(cls), expected_cls, atol=1e-6)
    assert torch.allclose(torch.sigmoid(seg), expected_seg, atol=1e-6)
    assert not torch.allclose(expected_cls, torch.sigmoid(outputs[0][1]))  # members differ


def test_ensemble_state_dict_holds_members_under_their_index() -> None:
    members = [YNet(features=(4, 4, 8, 8, 16, 4)) for _ in range(2)]
    keys = Ensemble(members).state_dict().keys()
    assert "members.0.unet.down_4.convs.conv_0.conv.weight" in keys
    assert "members.1.classifier.3.weight" in keys


def test_ensemble_needs_two_members_and_outputs_of_one_form() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        Ensemble([YNet()])
    with pytest.raises(ValueError, match="no outputs"):
        average_outputs([])
