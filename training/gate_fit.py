"""Fit and measure a packaged model's out-of-domain gate (``inference.gate``).

:func:`fit_gate` is the one way a gate reference is (re)computed: features of the model's
in-domain training images (inner-train part) give mean and shrunk covariance; the threshold is
the ``quantile`` of the distances of the inner-validation part, so about ``1 - quantile`` of
in-domain inputs are declined. :func:`measure_gate` then scores the hold-out (never used to fit
or to pick the threshold) against out-of-domain sets: AUROC per set and the false-decline rate.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from inference.gate import FeatureTap, GateReference
from inference.registry import Family, ModelInput, ModelSpec, SelectionRule, TensorContract
from inference.scope import GateSpec
from inference.transforms import to_model_input
from kernel.spool import replace_file

logger = logging.getLogger(__name__)

#: gate reference files are ``gate-<first 16 hex digits of their sha256>.npz``
GATE_PREFIX = "gate"
DEFAULT_QUANTILE = 0.975
"""Inner-validation quantile of the threshold: about 2.5 % of in-domain inputs declined."""


@dataclass(frozen=True)
class GateFit:
    """A fitted gate: the spec that carries it and the figures it was measured with."""

    spec: ModelSpec
    figures: dict[str, float]


def spec_inputs(spec: ModelSpec, plane: torch.Tensor) -> list[torch.Tensor]:
    """Every input of ``spec`` made of one normalised grey plane ``[1,1,S,S]``.

    Used for images that are not studies of the model's kind (out-of-domain sets): the plane is
    repeated over each input's channels and frames in the family's layout.
    """
    tensors = []
    for model_input in spec.inputs:
        contract = model_input.contract
        if spec.family is Family.VIDEO:
            tensors.append(plane[:, :, None].repeat(1, contract.channels, contract.frames, 1, 1))
        else:
            tensors.append(plane.repeat(1, contract.channels * contract.frames, 1, 1))
    return tensors


def grey_inputs(spec: ModelSpec, grey: np.ndarray) -> list[torch.Tensor]:
    """``spec``'s inputs of a grey [0, 1] image, brought to the grid as ``evaluate`` does."""
    return spec_inputs(spec, to_model_input(grey, spec.input_size))


def dicom_inputs(spec: ModelSpec, paths: list[Path]) -> list[torch.Tensor]:
    """``spec``'s inputs of a study's B-mode frame chosen, cropped and resampled as the node does.

    Raises ``MissingInput`` when the files hold no B-mode image.
    """
    from inference.runner import input_tensor
    from inference.selection import read_headers, select_model_input

    bmode = ModelInput(
        name="bmode",
        rule=SelectionRule.BMODE,
        contract=TensorContract(channels=1, frames=1, size=spec.input_size, range=(0.0, 1.0)),
    )
    selection = select_model_input(read_headers(paths), bmode)
    plane, _ = input_tensor(selection, bmode, Family.IMAGE)
    return spec_inputs(spec, plane)


@torch.no_grad()
def gate_features(
    network: nn.Module,
    layers: list[str],
    batches: Iterable[list[torch.Tensor]],
    batch_size: int = 16,
) -> np.ndarray:
    """Pooled features ``[N,D]`` at ``layers`` of every input list (eval mode), run
    ``batch_size`` at a time (eval mode: a batch gives each input the features it has alone)."""
    network.eval()
    rows: list[np.ndarray] = []
    pending: list[list[torch.Tensor]] = []

    def run() -> None:
        network(*[torch.cat(column) for column in zip(*pending, strict=True)])
        rows.append(tap.last())
        pending.clear()

    with FeatureTap(network, layers) as tap:
        for inputs in batches:
            pending.append(inputs)
            if len(pending) == batch_size:
                run()
        if pending:
            run()
    if not rows:
        raise ValueError("no inputs to take gate features of")
    return np.concatenate(rows).astype(np.float64)


def noise_images(count: int, size: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Grey [0, 1] noise: 1/f ("natural-image") noise, alternately white and Gaussian blobs."""
    rng = np.random.default_rng(seed)
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    radius = np.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0
    for index in range(count):
        if index % 3 == 0:
            image = rng.random((size, size))
        else:
            alpha = 1.0 if index % 3 == 1 else 2.0
            phase = np.exp(2j * np.pi * rng.random((size, size)))
            image = np.real(np.fft.ifft2(phase / radius**alpha))
        low, high = image.min(), image.max()
        yield ((image - low) / (high - low + 1e-12)).astype(np.float32)


def auroc(in_domain: np.ndarray, out_of_domain: np.ndarray) -> float:
    """AUROC of the score separating out-of-domain (positive) from in-domain inputs."""
    from sklearn.metrics import roc_auc_score

    truth = np.r_[np.zeros(len(in_domain)), np.ones(len(out_of_domain))]
    return float(roc_auc_score(truth, np.r_[in_domain, out_of_domain]))


def measure_gate(
    reference: GateReference,
    threshold: float,
    holdout: np.ndarray,
    out_of_domain: dict[str, np.ndarray],
) -> dict[str, float]:
    """Figures of a gate: the false-decline rate on the in-domain hold-out features, and per
    out-of-domain set its AUROC against the hold-out and the fraction it declines."""
    held = reference.scores(holdout)
    figures = {
        "holdout_n": float(len(held)),
        "false_decline_rate": float(np.mean(held > threshold)),
    }
    for name, features in out_of_domain.items():
        scores = reference.scores(features)
        figures[f"{name}_n"] = float(len(scores))
        figures[f"{name}_auroc"] = auroc(held, scores)
        figures[f"{name}_declined"] = float(np.mean(scores > threshold))
    return figures


def fit_gate(
    spec: ModelSpec,
    train: np.ndarray,
    validation: np.ndarray,
    fitted_on: str,
    quantile: float = DEFAULT_QUANTILE,
) -> tuple[GateReference, float]:
    """Reference of the inner-train features and threshold at ``quantile`` of the inner-validation
    distances; returns (reference, threshold). Nothing is written (:func:`write_gate`)."""
    if len(train) < 8 or len(validation) < 4:
        raise ValueError(
            f"{spec.ref}: too few images to fit a gate ({len(train)}, {len(validation)})"
        )
    reference = GateReference.fit(train)
    threshold = float(np.quantile(reference.scores(validation), quantile))
    logger.info("gate of %s: threshold %.3f (%s)", spec.ref, threshold, fitted_on)
    return reference, threshold


def write_gate(
    spec: ModelSpec,
    layers: list[str],
    reference: GateReference,
    threshold: float,
    fitted_on: str,
    figures: dict[str, float],
) -> ModelSpec:
    """Write the reference beside the weights and the gate into ``spec.json``; returns the spec.

    A running node reads the spec, then the reference it names, on every job, so a refit must
    never show a spec beside another spec's reference: the reference goes to a new file named
    by its content, then the spec is swapped in one rename. The reference the old spec named is
    kept (a job may have read that spec a moment ago); older ones are removed.
    """
    folder = spec.folder
    data = reference.npz_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    name = f"{GATE_PREFIX}-{sha256[:16]}.npz"
    replace_file(folder / name, lambda handle: handle.write(data))
    gate = GateSpec(
        method="mahalanobis",
        layers=layers,
        reference=name,
        reference_sha256=sha256,
        threshold=round(threshold, 4),
        fitted_on=fitted_on,
        figures={k: round(v, 4) for k, v in figures.items()},
    )
    updated = spec.model_copy(update={"scope": spec.scope.model_copy(update={"gate": gate})})
    ModelSpec.model_validate(updated.model_dump()).save(folder)
    keep = {name} | ({spec.gate_path.name} if spec.gate_path is not None else set())
    for old in folder.glob(f"{GATE_PREFIX}*.npz"):
        if old.name not in keep:
            old.unlink(missing_ok=True)
    written = ModelSpec.load(folder)
    if written.card_path.is_file():
        card = with_card_section(written.card_path.read_text(), gate_card_section(written))
        replace_file(written.card_path, lambda handle: handle.write(card.encode()))
    return written


CARD_HEADING = "## Scope and out-of-domain gate"


def gate_card_section(spec: ModelSpec) -> str:
    """The model card's scope section: the rule, the gate's method, why, and its figures."""
    gate = spec.scope.gate
    lines = [
        CARD_HEADING,
        "",
        (
            f"Routing rule (the spec's default; a site changes it with `lnm-node scope set`): "
            f"`{spec.scope.rule.text()}`. A study no rule matches gets no job."
        ),
        "",
    ]
    if gate is None:
        return "\n".join([*lines, "No out-of-domain gate.", ""])
    figures = gate.figures
    lines += [
        (
            f"Out-of-domain gate: Mahalanobis distance (Lee et al., NeurIPS 2018) of the input's "
            f"pooled features at {', '.join(f'`{x}`' for x in gate.layers)} (per channel: mean "
            "and standard deviation) to the training "
            "features (mean, Ledoit-Wolf shrunk covariance). Chosen because it needs no extra "
            "network or retraining, costs one matrix product on the forward pass the model runs "
            "anyway, and its reference is two arrays beside the weights; energy scores need a "
            "multi-class head (this is one logit) and reconstruction error a second network. "
            f'An input scoring above {gate.threshold:.2f} ends the job SKIPPED with a "not run" '
            "SR; `lnm-node evaluate` applies the same gate."
        ),
        "",
        f"Fitted on: {gate.fitted_on}.",
        "",
        "| set | images | AUROC vs in-domain hold-out | declined |",
        "|---|---|---|---|",
        (
            f"| in-domain hold-out | {figures.get('holdout_n', 0):.0f} | - | "
            f"{figures.get('false_decline_rate', float('nan')):.3f} (false declines) |"
        ),
    ]
    for name in sorted(k[: -len("_auroc")] for k in figures if k.endswith("_auroc")):
        lines.append(
            f"| {name} | {figures.get(name + '_n', 0):.0f} | {figures[name + '_auroc']:.3f} | "
            f"{figures.get(name + '_declined', float('nan')):.3f} |"
        )
    return "\n".join([*lines, ""])


def with_card_section(card: str, section: str) -> str:
    """``card`` with its scope section replaced by ``section`` (appended when absent)."""
    start = card.find(CARD_HEADING)
    if start < 0:
        return card.rstrip("\n") + "\n\n" + section
    end = card.find("\n## ", start + len(CARD_HEADING))
    rest = "" if end < 0 else card[end + 1 :]
    return card[:start] + section + ("\n" + rest if rest else "")
