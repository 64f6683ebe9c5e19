"""Embedding throughput as ratios against baselines taken in the same run.

    python benchmarks/embed.py [--patch-px 64] [--batch 256] [--repeats 3] [--device cpu|cuda]

  ours        patches/s of what each Spark embed task does per batch (`embed_images`: raw uint8 bytes ->
              tensor -> input scaling -> channels-last ResNet-50 backbone -> float32 numpy), encoder loaded
              through `cached_encoder` as the task loads it
  default     the same with the model and input in the default (contiguous) memory layout
  bare        a bare torchvision ResNet-50 forward to the pooled features on a ready float tensor of the
              same size (3 channels, channels-last), no decode, no copy back
Ratios: ours/bare (what our code costs around the network) and ours/default (what channels-last buys).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torchvision.models import resnet50

from cytolake.config import Settings
from cytolake.embed.inference import cached_encoder, embed_images
from cytolake.train.model import build_encoder, ensure_random_encoder, to_input
from timing import call_seconds


def best_rate(fn, n: int, repeats: int, device: str) -> float:
    return n / min(call_seconds(fn, repeats, device))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--patch-px", type=int, default=64)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    torch.manual_seed(0)
    images = [np.random.default_rng(i).integers(0, 255, (a.patch_px, a.patch_px), np.uint8).tobytes()
              for i in range(a.batch)]
    with tempfile.TemporaryDirectory() as d:
        settings = Settings()
        ensure_random_encoder(settings, Path(d) / "m")
        model = cached_encoder(str(Path(d) / "m"), a.device)
        pixels = np.frombuffer(b"".join(images), np.uint8).reshape(a.batch, a.patch_px, a.patch_px)
        ours = best_rate(lambda: embed_images(model, pixels, a.device), a.batch, a.repeats, a.device)
        plain = build_encoder(settings.train).to(a.device).eval()
        x = torch.from_numpy(np.frombuffer(b"".join(images), np.uint8).reshape(a.batch, a.patch_px, a.patch_px).copy())

        def default_layout():
            with torch.inference_mode():
                return plain.features(to_input(x.to(a.device))).cpu().numpy()

        default = best_rate(default_layout, a.batch, a.repeats, a.device)
    bare_net = resnet50(weights=None).to(a.device, memory_format=torch.channels_last).eval()
    bare_net.fc = torch.nn.Identity()
    xb = torch.randn(a.batch, 3, a.patch_px, a.patch_px, device=a.device).contiguous(memory_format=torch.channels_last)

    def bare_forward():
        with torch.inference_mode():
            return bare_net(xb)

    bare = best_rate(bare_forward, a.batch, a.repeats, a.device)
    print(json.dumps({"device": a.device, "threads": torch.get_num_threads(), "patch_px": a.patch_px, "batch": a.batch,
                      "ours_patches_s": round(ours, 1), "default_layout_patches_s": round(default, 1),
                      "bare_resnet50_patches_s": round(bare, 1), "ours_vs_bare": round(ours / bare, 3),
                      "ours_vs_default_layout": round(ours / default, 3)}))


if __name__ == "__main__":
    main()
