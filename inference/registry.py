"""Model registry: a model exists because a validated, frozen spec names it.

A models folder holds one sub-folder per packaged model (``<folder>/<key>/`` with
``spec.json``, the weights file and the model card). The packaged models live in
``inference/models/`` (package data); a site may point ``settings.models_dir`` elsewhere.
The models a site trains itself land in ``HOME/models/`` (:func:`site_models_dir`), which the
node registers too.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from importlib.resources import files
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from inference.scope import ModelScope
from kernel.errors import NodeError
from kernel.settings import Settings
from kernel.spool import replace_file

logger = logging.getLogger(__name__)

SPEC_FILE = "spec.json"
_KEY_RE = r"^[a-z0-9][a-z0-9._-]*$"
_FILE_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class RegistryError(NodeError):
    """A model reference cannot be resolved or a packaged model is unusable (a deployment fault)."""


class NotRegistered(RegistryError):
    """No registered model answers a reference (as against one that is registered but unusable)."""


class BadReference(RegistryError):
    """A model reference that is not ``key``, ``key@version`` or ``default``."""


class WeightsMismatch(RegistryError):
    """A weights file's sha256 differs from the one its spec was registered with."""


class Family(StrEnum):
    """Model families: what kind of input a model consumes."""

    IMAGE = "image"
    DUAL = "dual"
    VIDEO = "video"
    CEUS = "ceus"
    SEGCLS = "segcls"


class SelectionRule(StrEnum):
    """How the input of a named model input is chosen from a study (see ``inference.selection``)."""

    BMODE = "bmode"
    DOPPLER = "doppler"
    CINE = "cine"
    CEUS = "ceus"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Code(_Frozen):
    """A coded concept (value, scheme designator, meaning), e.g. (59441001, SCT, "Lymph node")."""

    value: str = Field(min_length=1)
    scheme: str = Field(min_length=1)
    meaning: str = Field(min_length=1)


class TensorContract(_Frozen):
    """What the network receives for one input: channels, frames, square size, value range.

    ``range`` is the grey value range the image is brought to before ``to_model_input``.
    """

    channels: int = Field(ge=1)
    frames: int = Field(ge=1)
    size: int = Field(ge=16)
    range: tuple[float, float]

    @model_validator(mode="after")
    def _check_range(self) -> TensorContract:
        if not self.range[0] < self.range[1]:
            raise ValueError(f"range {self.range} must be (low, high) with low < high")
        return self


class ModelInput(_Frozen):
    """A named model input: the rule that selects it from a study, and its tensor contract."""

    name: str = Field(pattern=_KEY_RE)
    rule: SelectionRule
    contract: TensorContract


class SegmentOutput(_Frozen):
    """One segment the network outputs, with the codes the SEG describes it with."""

    number: int = Field(ge=1)
    label: str = Field(min_length=1)
    category: Code
    type: Code


class ProbabilityOutput(_Frozen):
    """The class probability the model reports: the sigmoid of the network's class logit,
    through ``ModelSpec.calibration`` when the spec has one.

    The threshold that turns it into a call is ``ModelSpec.threshold``.
    """

    name: str = Field(min_length=1)
    meaning: Code


class FindingOutput(_Frozen):
    """What the model reports on, as its outputs code it (TID 1500 measurement group).

    ``type`` is the finding (121071, DCM), e.g. (52988006, SCT, "Lesion"); ``site`` the finding
    site written when the source image carries no coded anatomy (AnatomicRegionSequence);
    ``call`` the concept the call is made on, e.g. (128462008, SCT, "Metastasis"): the SR says
    it is present or absent at ``ModelSpec.threshold``.
    """

    type: Code
    site: Code | None = None
    call: Code


class MeasurementOutput(_Frozen):
    """A measurement derived from the segmentation, with its UCUM unit."""

    name: str = Field(pattern=_KEY_RE)
    unit: str = Field(min_length=1)


class HeatmapOutput(_Frozen):
    """The saliency map: the method, the network layer it hooks and the input it explains.

    ``input`` names one of the spec's inputs: the tensor Grad-CAM explains, whose key frame the
    heatmap is drawn over and the Prediction's source. A spec that leaves it out explains its
    first input (``ModelSpec`` fills the name in).
    """

    method: str = Field(pattern=r"^gradcam$")
    layer: str = Field(min_length=1)
    input: str | None = Field(default=None, pattern=_KEY_RE)


class Augmentation(StrEnum):
    """A test-time augmentation ``inference.tta`` applies (its inverse brings maps back)."""

    HFLIP = "hflip"


class EnsembleSpec(_Frozen):
    """The weights hold ``members`` networks of the spec's architecture (``members.<i>.``);
    their outputs are combined as the logit of the mean probability
    (``inference.networks.ensemble``)."""

    members: int = Field(ge=2)
    combine: Literal["mean-probability"] = "mean-probability"


class ModelOutputs(_Frozen):
    """Everything a model produces, named."""

    segments: list[SegmentOutput]
    finding: FindingOutput
    probability: ProbabilityOutput
    measurements: list[MeasurementOutput]
    heatmap: HeatmapOutput

    @model_validator(mode="after")
    def _unique(self) -> ModelOutputs:
        numbers = [s.number for s in self.segments]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"segment numbers {numbers} must be unique")
        return self


class CalibrationMethod(StrEnum):
    """How the class probability is calibrated (``inference.calibration.calibrate`` applies it)."""

    NONE = "none"
    TEMPERATURE = "temperature"
    ISOTONIC = "isotonic"


class Calibration(_Frozen):
    """The calibration of the class probability, and the data and figures behind it.

    ``temperature``: sigmoid(logit / T) (Guo et al., ICML 2017); ``isotonic``: the
    monotone map through ``points`` (uncalibrated, calibrated), linear between knots and flat
    beyond them; ``none``: the probability as the network gives it (``figures`` may still
    record its measured calibration). ``figures``: ECE (equal-width bins, ``bins``), Brier and
    log loss before and after on the ``n`` cases of ``fitted_on``.
    """

    method: CalibrationMethod = CalibrationMethod.NONE
    temperature: float | None = Field(default=None, gt=0.0)
    points: list[tuple[float, float]] | None = None
    fitted_on: str = ""
    figures: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _parameters(self) -> Calibration:
        wants_t = self.method is CalibrationMethod.TEMPERATURE
        if wants_t != (self.temperature is not None):
            raise ValueError("temperature is given exactly when method is 'temperature'")
        wants_points = self.method is CalibrationMethod.ISOTONIC
        if wants_points != (self.points is not None):
            raise ValueError("points are given exactly when method is 'isotonic'")
        if self.points is not None:
            x = [a for a, _ in self.points]
            y = [b for _, b in self.points]
            if len(x) < 2 or any(b <= a for a, b in pairwise(x)):
                raise ValueError("isotonic points need two or more strictly increasing inputs")
            if any(b < a for a, b in pairwise(y)):
                raise ValueError("isotonic points must not decrease")
            if not all(0.0 <= v <= 1.0 for v in x + y):
                raise ValueError("isotonic points must lie in [0, 1]")
        return self


_POLICY_RE = r"^(youden|(sensitivity|specificity)=(0?\.[0-9]+|1(\.0*)?))$"


def parse_policy(policy: str) -> tuple[str, float | None]:
    """``"youden"`` -> ("youden", None); ``"sensitivity=0.90"`` -> ("sensitivity", 0.9).

    Raises ``ValueError`` for any other text, or a target outside (0, 1].
    """
    text = policy.strip().lower()
    if not re.match(_POLICY_RE, text):
        raise ValueError(
            f"operating point {policy!r}: give youden, sensitivity=0.90 or specificity=0.90"
        )
    if text == "youden":
        return text, None
    kind, _, target = text.partition("=")
    value = float(target)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"operating point {policy!r}: the target must lie in (0, 1]")
    return kind, value


class OperatingPoint(_Frozen):
    """How ``ModelSpec.threshold`` was chosen: the policy (``youden``, ``sensitivity=0.90``,
    ``specificity=0.90``), the cases it was chosen on and the figures it gave there
    (``sensitivity``, ``specificity``, ``n``, ``n_positive``). The threshold itself is the
    spec's ``threshold`` (on the calibrated probability when the spec is calibrated)."""

    policy: str
    chosen_on: str = Field(min_length=1)
    figures: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid_policy(self) -> OperatingPoint:
        parse_policy(self.policy)
        return self


# The inputs each family takes, in forward order: (rule, frames allowed) per input. A family
# with several layouts lists each (the dual family's single-input variant takes B-mode only).
_FAMILY_LAYOUTS: dict[Family, tuple[tuple[tuple[SelectionRule, str], ...], ...]] = {
    Family.IMAGE: (((SelectionRule.BMODE, "one"),),),
    Family.SEGCLS: (((SelectionRule.BMODE, "one"),),),
    Family.DUAL: (
        ((SelectionRule.BMODE, "one"), (SelectionRule.DOPPLER, "one")),
        ((SelectionRule.BMODE, "one"),),
    ),
    Family.VIDEO: (((SelectionRule.CINE, "several"),),),
    Family.CEUS: (((SelectionRule.BMODE, "one"), (SelectionRule.CEUS, "several")),),
}


def _check_family_inputs(family: Family, inputs: list[ModelInput], in_channels: int) -> None:
    """Raise ``ValueError`` unless ``inputs`` follow one of the family's layouts.

    ``in_channels`` is the channel count of the first input per frame: a video's frames are
    a separate axis, every other input is one frame.
    """
    rules = [(i.rule, "one" if i.contract.frames == 1 else "several") for i in inputs]
    layouts = _FAMILY_LAYOUTS[family]
    if tuple(rules) not in layouts:
        wanted = " or ".join(
            "[" + ", ".join(f"{rule.value} ({frames} frame(s))" for rule, frames in layout) + "]"
            for layout in layouts
        )
        found = ", ".join(f"{i.rule.value} ({i.contract.frames} frame(s))" for i in inputs)
        raise ValueError(f"family {family.value} takes inputs {wanted}, not [{found}]")
    if inputs[0].contract.channels != in_channels:
        raise ValueError(
            f"in_channels is {in_channels} but the first input {inputs[0].name!r} carries "
            f"{inputs[0].contract.channels} channel(s) per frame"
        )
    for model_input in inputs:
        if model_input.rule is SelectionRule.DOPPLER and model_input.contract.channels != 3:
            raise ValueError(f"Doppler input {model_input.name!r} must carry 3 (colour) channels")
        if model_input.rule is SelectionRule.CEUS and model_input.contract.channels != 1:
            raise ValueError(f"CEUS input {model_input.name!r} must carry 1 channel per frame")


class ModelSpec(_Frozen):
    """A registered model: identity, inputs, outputs, weights and the evidence behind it.

    Every field but ``metrics`` must be filled by the packager. ``weights_path`` and
    ``card_path`` resolve against the folder the spec was loaded from (:meth:`load`).

    ``inputs`` are the network's forward arguments in order, laid out per family: image and
    segcls take one B-mode frame; dual takes B-mode then Doppler (3 channels), or B-mode
    alone for its single-input variant; video takes one cine input of several frames
    (tensor ``[B,C,T,H,W]``); ceus takes B-mode then the CEUS key frames (1 channel each,
    stacked as channels ``[B,T,H,W]``). ``in_channels`` is the first input's channels per frame.
    ``outputs.heatmap.input`` names the input Grad-CAM explains (default: the first).
    ``scope`` is the default routing rule and out-of-domain gate (``inference.scope``); a spec
    without one runs on every study, ungated. ``calibration`` maps the network's probability to
    the reported one (``inference.calibration.calibrate``; none: as the network gives it) and
    ``threshold`` is compared with that reported probability; ``operating_point`` says how the
    threshold was chosen. ``ensemble`` (None: one network) says the weights hold several
    members; ``tta`` lists the test-time augmentations ``run_model`` averages over.
    """

    key: str = Field(pattern=_KEY_RE, max_length=64)
    version: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=64)
    family: Family
    backbone: str = Field(min_length=1)
    architecture: str = Field(pattern=_KEY_RE)
    in_channels: int = Field(ge=1)
    input_size: int = Field(ge=16)
    inputs: list[ModelInput] = Field(min_length=1)
    outputs: ModelOutputs
    threshold: float = Field(gt=0.0, lt=1.0)
    weights: str = Field(pattern=_FILE_RE)
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    card: str = Field(pattern=_FILE_RE)
    trained_on: str = Field(min_length=1)
    evaluated_on: str = Field(min_length=1)
    metrics: dict[str, float] = Field(default_factory=dict)
    intended_use: str = Field(min_length=1)
    scope: ModelScope = Field(default_factory=ModelScope)
    calibration: Calibration | None = None
    operating_point: OperatingPoint | None = None
    ensemble: EnsembleSpec | None = None
    tta: list[Augmentation] = Field(default_factory=list)

    _folder: Path | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _name_explained_input(cls, data: Any) -> Any:
        """Fill ``outputs.heatmap.input`` with the first input's name when a spec leaves it out."""
        try:
            heatmap = data["outputs"]["heatmap"]
            first = data["inputs"][0]["name"]
        except (KeyError, IndexError, TypeError):
            return data  # not a plain mapping, or incomplete: the field checks report it
        if not isinstance(heatmap, dict) or heatmap.get("input") is not None:
            return data
        outputs = {**data["outputs"], "heatmap": {**heatmap, "input": first}}
        return {**data, "outputs": outputs}

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        try:
            Version(self.version)
        except InvalidVersion as error:
            raise ValueError(f"version {self.version!r} is not a PEP 440 version") from error
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError(f"input names {names} must be unique")
        _check_family_inputs(self.family, self.inputs, self.in_channels)
        explained = self.outputs.heatmap.input
        if explained is not None and explained not in names:
            raise ValueError(
                f"outputs.heatmap.input {explained!r} is not one of the inputs {names}"
            )
        for model_input in self.inputs:
            if model_input.contract.size != self.input_size:
                raise ValueError(
                    f"input {model_input.name!r} has size {model_input.contract.size}, "
                    f"input_size is {self.input_size}"
                )
        chosen = (self.operating_point.figures if self.operating_point else {}).get("threshold")
        if chosen is not None and abs(chosen - self.threshold) > 1e-6:
            raise ValueError(
                f"operating_point records threshold {chosen}, the spec's threshold is "
                f"{self.threshold}: the spec's threshold is the one source"
            )
        return self

    @property
    def explained_index(self) -> int:
        """Position in ``inputs`` (forward order) of the input Grad-CAM explains."""
        explained = self.outputs.heatmap.input
        if explained is None:  # a spec copied without validation
            return 0
        return [i.name for i in self.inputs].index(explained)

    @property
    def ref(self) -> str:
        """``key@version``, the form jobs record."""
        return f"{self.key}@{self.version}"

    @property
    def folder(self) -> Path:
        """The folder this spec was loaded from."""
        if self._folder is None:
            raise RegistryError(
                f"model {self.ref} was not loaded from a folder; use ModelSpec.load"
            )
        return self._folder

    @property
    def weights_path(self) -> Path:
        """The weights file, resolved against the spec's folder."""
        return self.folder / self.weights

    @property
    def gate_path(self) -> Path | None:
        """The gate's reference file, resolved against the spec's folder (None: no gate)."""
        gate = self.scope.gate
        return None if gate is None else self.folder / gate.reference

    @property
    def card_path(self) -> Path:
        """The model card, resolved against the spec's folder."""
        return self.folder / self.card

    @classmethod
    def load(cls, folder: Path) -> ModelSpec:
        """Read and validate ``<folder>/spec.json``; file paths then resolve against ``folder``."""
        path = folder / SPEC_FILE
        try:
            spec = cls.model_validate_json(path.read_bytes())
        except OSError as error:
            raise RegistryError(f"cannot read model spec {path}: {error}") from error
        except ValidationError as error:
            found = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in error.errors()
            )
            raise RegistryError(f"invalid model spec {path}: {found}") from error
        spec._folder = folder.absolute()
        return spec

    def save(self, folder: Path) -> Path:
        """Write ``<folder>/spec.json`` whole (a worker reading it meanwhile sees the old spec
        or the new one); returns its path."""
        folder.mkdir(parents=True, exist_ok=True)
        text = (self.model_dump_json(indent=2) + "\n").encode()
        return replace_file(folder / SPEC_FILE, lambda handle: handle.write(text))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify_weights(spec: ModelSpec) -> Path:
    """Check the weights file exists and matches ``spec.weights_sha256``; returns its path."""
    path = spec.weights_path
    if not path.is_file():
        raise RegistryError(f"model {spec.ref}: weights file {path} is missing")
    actual = sha256_file(path)
    if actual != spec.weights_sha256:
        raise WeightsMismatch(
            f"model {spec.ref}: weights {path.name} have sha256 {actual}, "
            f"the spec registers {spec.weights_sha256}; repackage the model or restore the file"
        )
    return path


def default_models_dir() -> Path:
    """The folder of the models packaged with the node (``inference/models``)."""
    return Path(str(files("inference") / "models"))


def site_models_dir(settings: Settings) -> Path:
    """``HOME/models``: the models a site trained (``lnm-node train --package``), registered
    beside the packaged ones."""
    return settings.home / "models"


def _version_key(version: str) -> Version:
    """The order of a key's versions (validated PEP 440 by :class:`ModelSpec`)."""
    return Version(version)


@dataclass(frozen=True)
class RegistryProblem:
    """A models sub-folder the registry left out: its spec does not load, or its key@version is
    packaged in another folder too."""

    folder: Path
    reason: str


def _read_folder(folder: Path) -> tuple[list[ModelSpec], list[RegistryProblem]]:
    """The specs of ``folder``'s sub-folders, and those whose spec does not load."""
    specs, unreadable = [], []
    for path in sorted(folder.glob(f"*/{SPEC_FILE}")):
        try:
            specs.append(ModelSpec.load(path.parent))
        except RegistryError as error:
            unreadable.append(RegistryProblem(path.parent.absolute(), str(error)))
    logger.debug("read %d model spec(s) from %s", len(specs), folder)  # each job reads them
    return specs, unreadable


class Registry:
    """The registered models of one or more models folders, by key and version.

    One bad folder does not stop the others: a spec that does not load, or a key@version that
    two folders hold, is left out and kept as a :class:`RegistryProblem`. A reference to a
    version held twice is refused with the reason (neither copy is chosen), and so is a bare key
    while a spec does not load (its version is unknown, so the highest cannot be told).
    """

    def __init__(self, specs: list[ModelSpec], unreadable: list[RegistryProblem] | None = None) -> None:
        by_ident: dict[tuple[str, str], list[ModelSpec]] = {}
        for spec in specs:
            by_ident.setdefault((spec.key, spec.version), []).append(spec)
        self._specs = {ident: held[0] for ident, held in by_ident.items() if len(held) == 1}
        self._twice = {
            ident: f"model {held[0].ref} is registered twice "
            f"({' and '.join(str(s.folder) for s in held)}): remove or re-version one"
            for ident, held in by_ident.items() if len(held) > 1
        }
        self._unreadable = list(unreadable or [])
        self._problems = self._unreadable + [
            RegistryProblem(s.folder, self._twice[s.key, s.version])
            for s in specs if (s.key, s.version) in self._twice
        ]

    @classmethod
    def load(cls, folder: Path) -> Registry:
        """Read every ``<folder>/<key>/spec.json``; an absent folder gives an empty registry."""
        if not folder.is_dir():
            logger.warning("models folder %s does not exist: no models registered", folder)
            return cls([])
        return cls(*_read_folder(folder))

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        """The models the node at ``settings.home`` runs: those of ``settings.models_dir`` (the
        packaged models when unset) and the site's own in :func:`site_models_dir`."""
        folders = [settings.models_dir or default_models_dir(), site_models_dir(settings)]
        specs: list[ModelSpec] = []
        unreadable: list[RegistryProblem] = []
        for folder in dict.fromkeys(Path(f).absolute() for f in folders):
            if folder.is_dir():
                read, failed = _read_folder(folder)
                specs += read
                unreadable += failed
        return cls(specs, unreadable)

    def specs(self) -> list[ModelSpec]:
        """All registered specs, sorted by key then version."""
        return sorted(self._specs.values(), key=lambda s: (s.key, _version_key(s.version)))

    def problems(self) -> list[RegistryProblem]:
        """The folders left out, each with why: an admin must mend or remove them."""
        return list(self._problems)

    def get(self, ref: str, default_key: str) -> ModelSpec:
        """Resolve ``"key"`` (its highest version), ``"key@version"`` or ``"default"``.

        ``default_key`` (normally ``settings.default_model``) may itself be ``key@version``.
        """
        text = ref.strip()
        if text == "default":
            text = default_key.strip()
        key, _, version = text.partition("@")
        if not re.match(_KEY_RE, key):
            raise BadReference(f"model reference {ref!r} is not 'key', 'key@version' or 'default'")
        if version:
            if (key, version) in self._twice:
                raise RegistryError(self._twice[key, version])
            spec = self._specs.get((key, version))
            if spec is None:
                raise NotRegistered(
                    f"model {key}@{version} is not registered; known: {self._known()}"
                )
            return spec
        if self._unreadable:
            problem = self._unreadable[0]
            raise RegistryError(
                f"cannot tell the highest version of {key!r} while a model's spec does not load "
                f"({problem.folder}): name the version, or mend or remove that folder"
            )
        held = [ident for ident in [*self._specs, *self._twice] if ident[0] == key]
        if not held:
            raise NotRegistered(f"model {key!r} is not registered; known: {self._known()}")
        highest = max(held, key=lambda ident: _version_key(ident[1]))
        if highest in self._twice:
            raise RegistryError(self._twice[highest])
        return self._specs[highest]

    def check_version_free(self, key: str, version: str) -> None:
        """Raise :class:`RegistryError` when ``key@version`` is registered already: packaging
        a second one would leave both copies unusable ("registered twice")."""
        if (key, version) in self._twice:
            raise RegistryError(self._twice[key, version])
        spec = self._specs.get((key, version))
        if spec is not None:
            raise RegistryError(
                f"model {spec.ref} is registered already ({spec.folder}): "
                "package it as another version"
            )

    def _known(self) -> str:
        return ", ".join(s.ref for s in self.specs()) or "none"

    def __len__(self) -> int:
        return len(self._specs)
