"""2D feature extractors by name: torchvision constructors (``weights=None``) and small MONAI ResNets.

Each backbone is returned as its convolutional trunk only (``[B,C,H,W] -> [B,F,h,w]``) with
the first convolution rebuilt for the requested input channels; the families put their own
heads on it. Nothing is downloaded: every network starts from random initialisation.

The torchvision backbones are the ones compared in the lymph-node ultrasound literature:
ResNet50 (He et al., CVPR 2016), DenseNet121 (Huang et al., CVPR 2017), VGG16 (Simonyan and
Zisserman, ICLR 2015), InceptionV3 (Szegedy et al., CVPR 2016), EfficientNet-B3 (Tan and Le,
ICML 2019), ConvNeXt-T (Liu et al., CVPR 2022) and SqueezeNet 1.1 (Iandola et al., 2016);
DenseNet169/201 and ResNet18/34 add the encoders of the B-mode + CEUS fusion studies.
``resnet<depth>-w<width>`` names a MONAI ``ResNet`` with basic blocks and stage widths
``(w, 2w, 4w, 8w)`` (depth 10: one block per stage; 18: two), for small CPU models.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from monai.networks.nets import ResNet
from torch import nn
from torchvision import models

TORCHVISION_BACKBONES = (
    "resnet50",
    "densenet121",
    "vgg16",
    "inception_v3",
    "efficientnet_b3",
    "convnext_tiny",
    "squeezenet1_1",
)
"""The seven backbones of the image family's literature."""
CEUS_BACKBONES = ("densenet121", "densenet169", "densenet201", "resnet18", "resnet34")
"""The 2D encoders compared in the B-mode + CEUS deep-learning studies."""
_SMALL_RESNET = re.compile(r"^resnet(10|18)-w([1-9][0-9]*)$")
_RESNET_LAYERS = {"10": [1, 1, 1, 1], "18": [2, 2, 2, 2]}


@dataclass(frozen=True)
class Backbone:
    """A trunk, its output channels and the smallest square input it accepts."""

    features: nn.Module
    channels: int
    min_size: int


def replace_first_conv(module: nn.Module, in_channels: int) -> nn.Module:
    """Rebuild the first ``Conv2d``/``Conv3d`` of ``module`` for ``in_channels``; returns ``module``.

    Kernel, stride, padding, dilation, groups and bias are kept; the weights are re-initialised.
    """
    for name, child in module.named_modules():
        if isinstance(child, nn.Conv2d | nn.Conv3d):
            if child.in_channels == in_channels:
                return module
            replacement = type(child)(
                in_channels,
                child.out_channels,
                kernel_size=child.kernel_size,  # type: ignore[arg-type]
                stride=child.stride,  # type: ignore[arg-type]
                padding=child.padding,  # type: ignore[arg-type]
                dilation=child.dilation,  # type: ignore[arg-type]
                groups=1,
                bias=child.bias is not None,
            )
            parent_name, _, attribute = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            setattr(parent, attribute, replacement)
            return module
    raise ValueError(f"{type(module).__name__} has no convolution to adapt")


def _resnet50() -> Backbone:
    net = models.resnet50(weights=None)
    trunk = nn.Sequential(
        net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
    )
    return Backbone(trunk, 2048, 32)


def _densenet121() -> Backbone:
    net = models.densenet121(weights=None)
    return Backbone(nn.Sequential(net.features, nn.ReLU(inplace=False)), 1024, 32)


def _vgg16() -> Backbone:
    return Backbone(models.vgg16(weights=None).features, 512, 32)


def _inception_v3() -> Backbone:
    net = models.inception_v3(weights=None, aux_logits=False, init_weights=True)
    names = [n for n, _ in net.named_children() if n not in ("avgpool", "dropout", "fc")]
    return Backbone(nn.Sequential(*(getattr(net, n) for n in names)), 2048, 75)


def _efficientnet_b3() -> Backbone:
    return Backbone(models.efficientnet_b3(weights=None).features, 1536, 32)


def _convnext_tiny() -> Backbone:
    return Backbone(models.convnext_tiny(weights=None).features, 768, 32)


def _squeezenet1_1() -> Backbone:
    return Backbone(models.squeezenet1_1(weights=None).features, 512, 32)


def _densenet(depth: int) -> Callable[[], Backbone]:
    def build() -> Backbone:
        net = getattr(models, f"densenet{depth}")(weights=None)
        channels = int(net.classifier.in_features)
        return Backbone(nn.Sequential(net.features, nn.ReLU(inplace=False)), channels, 32)

    return build


def _resnet(depth: int) -> Callable[[], Backbone]:
    def build() -> Backbone:
        net = getattr(models, f"resnet{depth}")(weights=None)
        trunk = nn.Sequential(
            net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3,
            net.layer4,
        )  # fmt: skip
        return Backbone(trunk, int(net.fc.in_features), 32)

    return build


_TORCHVISION: dict[str, Callable[[], Backbone]] = {
    "resnet50": _resnet50,
    "densenet121": _densenet121,
    "vgg16": _vgg16,
    "inception_v3": _inception_v3,
    "efficientnet_b3": _efficientnet_b3,
    "convnext_tiny": _convnext_tiny,
    "squeezenet1_1": _squeezenet1_1,
    "densenet169": _densenet(169),
    "densenet201": _densenet(201),
    "resnet18": _resnet(18),
    "resnet34": _resnet(34),
}


def small_resnet(name: str, in_channels: int, spatial_dims: int = 2) -> ResNet:
    """The MONAI ``ResNet`` named ``resnet<10|18>-w<width>`` with a 1-logit head (unused in 2D trunks)."""
    match = _SMALL_RESNET.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a small ResNet name 'resnet<10|18>-w<width>'")
    width = int(match.group(2))
    return ResNet(
        block="basic",
        layers=_RESNET_LAYERS[match.group(1)],
        block_inplanes=[width, 2 * width, 4 * width, 8 * width],
        spatial_dims=spatial_dims,
        n_input_channels=in_channels,
        conv1_t_size=7 if spatial_dims == 2 else 3,
        conv1_t_stride=2 if spatial_dims == 2 else 1,
        num_classes=1,
    )


def resnet_trunk(net: ResNet) -> nn.Sequential:
    """A MONAI ``ResNet``'s stem and four stages, without its pooling and head."""
    return nn.Sequential(
        net.conv1, net.bn1, net.act, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
    )


def is_backbone(name: str) -> bool:
    """Whether ``name`` is a 2D backbone :func:`build_backbone` knows."""
    return name in _TORCHVISION or _SMALL_RESNET.match(name) is not None


def build_backbone(name: str, in_channels: int) -> Backbone:
    """The 2D trunk named ``name`` taking ``in_channels`` channels, randomly initialised."""
    if name in _TORCHVISION:
        backbone = _TORCHVISION[name]()
        replace_first_conv(backbone.features, in_channels)
        return backbone
    if _SMALL_RESNET.match(name):
        net = small_resnet(name, in_channels)
        return Backbone(resnet_trunk(net), int(net.fc.in_features), 16)
    raise ValueError(
        f"unknown backbone {name!r}; known: {', '.join(_TORCHVISION)}, resnet<10|18>-w<width>"
    )
