"""Package every fold of a k-fold run as ONE model version: an ensemble of the k fold models.

``lnm-node train ... --package VERSION --members all``. The weights file holds each fold's
best-epoch weights under ``members.<i>.`` (one file, one sha256; ``inference.loading`` builds
an ``inference.networks.ensemble.Ensemble`` from the spec's ``ensemble`` field). The ensemble
answers in a member's output form: the logit of the members' mean probability, segmentation
probabilities averaged per pixel too, so the runner, the SR and ``lnm-node evaluate`` need
nothing else.

Threshold: Youden's J on the run's pooled out-of-fold predictions (``oof.npz``), each case
scored by the one member that never trained on it. The honest alternative sources are few:
a member's inner-validation cases predicted by the ensemble are leaky (the other members
trained on them), and no out-of-fold prediction of the ensemble itself exists (every case
trained k-1 of its members). Its figures are therefore the members' pooled out-of-fold
figures, and the card says to measure the ensemble on data no member saw.

Grad-CAM: the spec's heatmap layer inside each member, maps averaged. Out-of-domain gate: the
base spec's gate layers inside member 0 (``members.0.<layer>``), fitted on all the run's cases
(``training.gate_data.fit_packaged_gate``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from inference.networks.ensemble import member_layer
from inference.registry import ModelSpec, OperatingPoint
from training.calibrate import choose_operating_point
from training.kfold import read_pooled
from training.package import write_package
from training.package_families import NetworkFacts, render_card
from training.retrain import pooled_figures
from training.trainer import BEST_FILE

logger = logging.getLogger(__name__)

MEMBER_PREFIX = member_layer(0, "")


def member_spec(spec: ModelSpec) -> ModelSpec:
    """The spec of one member of ``spec`` (``spec`` itself when it is no ensemble): what a
    k-fold run trains, gate layers taken back out of member 0."""
    if spec.ensemble is None:
        return spec
    fields = spec.model_dump(mode="json")
    fields["ensemble"] = None
    gate = fields["scope"]["gate"]
    if gate is not None:
        gate["layers"] = [layer.removeprefix(MEMBER_PREFIX) for layer in gate["layers"]]
    member = ModelSpec.model_validate(fields)
    member._folder = spec._folder
    return member


def ensemble_fields(member_fields: dict, members: int) -> dict:
    """Spec fields (``model_dump(mode="json")``) of a member turned into an ensemble of
    ``members``: the ``ensemble`` field set, gate layers moved into member 0."""
    fields = {**member_fields, "ensemble": {"members": members}}
    gate = fields["scope"]["gate"]
    if gate is not None:
        layers = [member_layer(0, layer) for layer in gate["layers"]]
        fields["scope"] = {**fields["scope"], "gate": {**gate, "layers": layers}}
    return fields


def ensemble_state(run: Path, k: int) -> dict[str, torch.Tensor]:
    """Every fold's best-epoch weights of ``run`` in one state_dict, fold i under ``members.i.``."""
    state: dict[str, torch.Tensor] = {}
    for fold in range(k):
        path = Path(run) / f"fold_{fold}" / BEST_FILE
        member = torch.load(path, map_location="cpu", weights_only=True)
        state.update({f"members.{fold}.{name}": value for name, value in member.items()})
    return state


def out_of_fold_operating_point(run: Path, policy: str) -> tuple[float, OperatingPoint]:
    """(threshold, operating point) of ``policy`` on the run's pooled out-of-fold predictions,
    each case scored by the one member that never trained on it."""
    oof = read_pooled(run)
    y, p = oof["malignant"].astype(int), oof["probability"].astype(float)
    known = y >= 0
    chosen_on = (
        f"the pooled out-of-fold predictions of {int(known.sum())} cases, each scored by the "
        "one member that never trained on it"
    )
    return choose_operating_point(policy, y[known], p[known], chosen_on)


def _policy_words(policy: str) -> str:
    return "Youden's J" if policy == "youden" else f"the operating point {policy}"


def package_ensemble(
    spec: ModelSpec,
    run: Path,
    summary: dict,
    version: str,
    models_dir: Path,
    dataset: str,
    calibration: str = "none",
    operating_point: str = "youden",
) -> ModelSpec:
    """Package all k folds of ``run`` as one ensemble ``spec.key`` ``version`` into
    ``models_dir/<key>-<version>/``; returns the packaged spec (see the module docstring).

    ``operating_point`` is chosen on the pooled out-of-fold predictions. An ensemble is not
    calibrated here: every case trained some member, so no case is left to fit it on
    (``lnm-node models calibrate`` fits it on a labelled set the site names).
    """
    if calibration != "none":
        raise ValueError(
            "an ensemble is calibrated on cases none of its members trained on: package it "
            "with --calibration none, then `lnm-node models calibrate KEY@VERSION FOLDER` on "
            "other labelled cases"
        )
    member = member_spec(spec)
    k = len(summary["folds"])
    target = Path(models_dir) / f"{spec.key}-{version}"
    if (target / "spec.json").exists():
        raise FileExistsError(f"{target} exists: package under another version")
    threshold, point = out_of_fold_operating_point(run, operating_point)
    metrics = pooled_figures(summary["pooled"])
    fold_aucs = ", ".join(
        "n/a" if f.get("auc") is None else f"{f['auc']:.3f}" for f in summary["folds"]
    )
    gate_note = (
        f"The out-of-domain gate scores the features of member 0 (fold 0) at "
        f"{', '.join(member.scope.gate.layers)}."
        if member.scope.gate is not None
        else ""
    )
    facts = NetworkFacts.of_spec(
        member,
        threshold=threshold,
        trained_on=f"{dataset} Member i trained on the training part of fold i of a {k}-fold "
        "cross-validation; together the members saw every case.",
        evaluated_on=f"The same dataset: out-of-fold predictions of the {k} members, pooled "
        "(each case by the member that did not train on it). These are single-member figures: "
        "the ensemble has none of its own here.",
        metrics=metrics,
        training=(
            f"Weights: an ensemble of all {k} fold models (members.0 ... members.{k - 1}: fold "
            f"i's best inner-validation epoch; out-of-fold AUC per fold {fold_aucs}), in one "
            "weights file. Combined as the mean of the members' probabilities (the "
            "segmentation's per pixel too), passed on as its logit; Grad-CAM is the mean of the "
            f"members' maps at `{member.outputs.heatmap.layer}`. {gate_note}".strip()
            + f" Trained with `lnm-node train` (run folder {Path(run).name})."
        ),
        evaluation=(
            f"Threshold {threshold:.3f}: {_policy_words(point.policy)} on {point.chosen_on}. The "
            "members' inner-validation cases predicted by the ensemble would be leaky (the "
            "other members trained on them). Figures: every fold's test cases at that fold's "
            "own threshold, pooled."
        ),
        limitations=(
            (
                "No figure of the ensemble itself on unseen data: evaluate it on other studies "
                "(`lnm-node evaluate`) and compare it with a single fold (`lnm-node compare`) "
                "before promoting it."
            ),
            (
                f"Time to result: every job runs all {k} members (forward and Grad-CAM), about "
                f"{k} times one network's inference time. On the project's shared 2-core CPU a "
                "256-px Y-Net job took 0.52 s as one network and 2.5 s as 5 members (README; "
                "`benchmarks/ensemble_tta.py` measures this node): on a CPU node an ensemble "
                "can miss the warm time-to-result targets that one network meets."
            ),
            (
                "Registered beside the live version but not enabled: `lnm-node models shadow` runs "
                "it without sending results, `models promote` makes it live."
            ),
        ),
    )

    def fields(sha256: str) -> dict:  # the gate is refitted on the ensemble (fit_packaged_gate)
        return {
            **ensemble_fields(member.model_dump(mode="json"), k),
            "version": version,
            "threshold": threshold,
            "operating_point": point.model_dump(mode="json"),
            "weights_sha256": sha256,
            "trained_on": facts.trained_on,
            "evaluated_on": facts.evaluated_on,
            "metrics": metrics,
        }

    state = ensemble_state(run, k)
    packaged = write_package(state, target, fields, lambda s: render_card(s, facts))
    logger.info("packaged %s (ensemble of %d folds) into %s", packaged.ref, k, target)
    return ModelSpec.load(target)
