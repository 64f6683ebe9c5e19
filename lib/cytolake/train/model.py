"""The encoder: an input head that brings large patches down, a torchvision ResNet (`train.backbone`:
ResNet-50 as in the poster, or a smaller one where compute is short; no pretrained weights, single
channel), and a projection head to a normalised 128-d z. The pooled backbone output (2048-d for
ResNet-50, 512-d for ResNet-18/34) is the feature used downstream."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from torch import nn
import torchvision

from cytolake.config import Settings, TrainSettings

RANDOM_INIT = "random-init"  # the model version of the untrained baseline
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
LAYOUTS = ("channels_last", "backbone", "contiguous")  # memory layouts of `with_layout`


def _norm(kind: str):
    """The normalisation layer: `batch` (the default), or `group` (per-sample, so a distributed step is
    exactly the single-process step on the concatenated batch; used where SyncBatchNorm is unavailable)."""
    if kind == "batch":
        return nn.BatchNorm2d
    if kind == "group":
        return lambda c: nn.GroupNorm(math.gcd(32, c), c)
    raise ValueError(f"unknown norm {kind!r} (batch | group)")


class InputHead(nn.Module):
    """Strided 3x3 convolutions halving the input `log2(downsample)` times (the poster's 2048 px patches
    reach the ResNet stem at 2048 / downsample px); identity when downsample is 1."""

    def __init__(self, downsample: int, channels: int, norm: str):
        super().__init__()
        if downsample < 1 or downsample & (downsample - 1):
            raise ValueError(f"input head downsample must be a power of two, got {downsample}")
        layers, c_in = [], 1
        for _ in range(int(math.log2(downsample))):
            layers += [nn.Conv2d(c_in, channels, 3, stride=2, padding=1, bias=False), _norm(norm)(channels), nn.ReLU(inplace=True)]
            c_in = channels
        self.layers = nn.Sequential(*layers)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Encoder(nn.Module):
    def __init__(self, head_downsample: int = 1, head_channels: int = 16, projection_dim: int = 128, norm: str = "batch",
                 backbone: str = "resnet50"):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r} (one of {', '.join(BACKBONES)})")
        self.head = InputHead(head_downsample, head_channels, norm)
        self.backbone = getattr(torchvision.models, backbone)(weights=None, norm_layer=_norm(norm))
        self.backbone.conv1 = nn.Conv2d(self.head.out_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.feature_dim = self.backbone.fc.in_features
        self.backbone.fc = nn.Identity()
        d = self.feature_dim
        self.projection = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, projection_dim))
        self.input_layout = self.backbone_layout = torch.contiguous_format  # set by with_layout

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled backbone output (N, feature_dim) for (N, 1, H, W) float input."""
        return self.backbone(self.head(x).contiguous(memory_format=self.backbone_layout))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, z): z is the L2-normalised projection the loss is computed on."""
        h = self.features(x)
        return h, nn.functional.normalize(self.projection(h), dim=1)


def with_layout(model: Encoder, layout: str) -> Encoder:
    """The encoder in a memory layout: `channels_last` (every convolution), `backbone` (the ResNet
    channels-last, the single-channel input head not), or `contiguous`; benchmarks/throughput/train.py and
    embed.py measure each. Inputs go in as `x.contiguous(memory_format=model.input_layout)`."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r} (one of {', '.join(LAYOUTS)})")
    cl = torch.channels_last
    model.to(memory_format=torch.contiguous_format)
    if layout == "channels_last":
        model.to(memory_format=cl)
    elif layout == "backbone":
        model.backbone.to(memory_format=cl)
    model.backbone_layout = torch.contiguous_format if layout == "contiguous" else cl
    model.input_layout = cl if layout == "channels_last" else torch.contiguous_format
    return model


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) patches -> float (N, 1, H, W), centred and scaled; float input is taken as converted."""
    if images.dtype != torch.uint8:
        return images
    return ((images.float() / 255.0) - 0.5).div_(0.25).unsqueeze(1)


def build_encoder(train: TrainSettings) -> Encoder:
    return Encoder(train.head_downsample, train.head_channels, train.projection_dim, train.norm, train.backbone)


def load_encoder(model_dir: Path, device: str = "cpu") -> Encoder:
    """A trained encoder from its folder (architecture from config.json), in eval mode."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    model = build_encoder(TrainSettings.model_validate(cfg["train"]))
    model.load_state_dict(torch.load(Path(model_dir) / "encoder.pt", map_location=device, weights_only=True))
    return model.eval()


def save_atomic(obj, path: Path) -> None:
    """torch.save through a temporary file, so a crash never leaves a half-written file under `path`."""
    tmp = path.with_name(path.name + ".part")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_encoder(out: Path, model: Encoder, train: TrainSettings, world: int, steps: int) -> None:
    save_atomic(model.state_dict(), out / "encoder.pt")
    (out / "config.json").write_text(json.dumps({"model_version": train.model_version, "train": train.model_dump(mode="json"),
                                                 "world": world, "steps": steps}, indent=2))


def ensure_random_encoder(settings: Settings, out: Path) -> None:
    """The untrained baseline: the configured architecture, initialised from train.seed, saved once."""
    if (out / "encoder.pt").is_file():
        return
    train = settings.train.model_copy(update={"model_version": out.name})
    torch.manual_seed(train.seed)
    out.mkdir(parents=True, exist_ok=True)
    save_encoder(out, build_encoder(train).eval(), train, 1, 0)
