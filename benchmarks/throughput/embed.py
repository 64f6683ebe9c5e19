"""Embedding throughput as ratios against baselines taken in the same run.

    .venv/bin/python -m benchmarks.throughput.embed [--patch-px 64] [--batch 256] [--head-downsample 1] [--repeats 3] [--device cpu|cuda]

  ours        patches/s of what each Spark embed task does per batch (`embed_images`: raw uint8 bytes ->
              tensor -> input scaling -> encoder -> float32 numpy), encoder loaded through
              `cached_encoder` as the task loads it (channels-last)
  layouts     the same with the encoder in each memory layout of `model.with_layout`
  bare        a bare torchvision ResNet-50 forward to the pooled features on a ready float tensor of the
              size the backbone sees (patch_px / head_downsample; 3 channels, channels-last), no decode,
              no copy back
Ratios: ours/bare (what our code and the input head cost around the network) and ours/contiguous (what
the layout buys). On a GPU every side runs under bf16 autocast, as embed_images does there.
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
from cytolake.train.model import LAYOUTS, ensure_random_encoder, load_encoder, with_layout
from benchmarks.throughput.timing import call_seconds


def best_rate(fn, n: int, repeats: int, device: str) -> float:
    return n / min(call_seconds(fn, repeats, device))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--patch-px", type=int, default=64)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--head-downsample", type=int, default=1, help="the seed's 2048 px: 8 (conf/cluster.example.yaml)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    torch.manual_seed(0)
    pixels = np.random.default_rng(0).integers(0, 255, (a.batch, a.patch_px, a.patch_px), np.uint8)
    res = {"device": a.device, "threads": torch.get_num_threads(), "patch_px": a.patch_px, "batch": a.batch,
           "head_downsample": a.head_downsample}
    with tempfile.TemporaryDirectory() as d:
        m = Path(d) / "m"
        ensure_random_encoder(Settings(train={"head_downsample": a.head_downsample}), m)
        model = cached_encoder(str(m), a.device)
        ours = best_rate(lambda: embed_images(model, pixels, a.device), a.batch, a.repeats, a.device)
        for layout in LAYOUTS:
            other = with_layout(load_encoder(m, a.device).to(a.device), layout)
            res[f"{layout}_patches_s"] = round(best_rate(lambda: embed_images(other, pixels, a.device), a.batch,
                                                         a.repeats, a.device), 1)
    bare_net = resnet50(weights=None).to(a.device, memory_format=torch.channels_last).eval()
    bare_net.fc = torch.nn.Identity()
    side = a.patch_px // a.head_downsample
    xb = torch.randn(a.batch, 3, side, side, device=a.device).contiguous(memory_format=torch.channels_last)

    def bare_forward():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.device == "cuda"):
            return bare_net(xb)

    bare = best_rate(bare_forward, a.batch, a.repeats, a.device)
    print(json.dumps({**res, "ours_patches_s": round(ours, 1), "bare_resnet50_patches_s": round(bare, 1),
                      "ours_vs_bare": round(ours / bare, 3),
                      "ours_vs_contiguous": round(ours / res["contiguous_patches_s"], 3)}))


if __name__ == "__main__":
    main()
