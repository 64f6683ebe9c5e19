"""Training and reader throughput as ratios against baselines taken in the same run.

    .venv/bin/python -m benchmarks.throughput.train --config conf/local.yaml [--patch-px 64] [--batch 32] [--steps 5] [--device cpu|cuda]

  step    samples/s of our training step (input head + ResNet-50 + projection + pmap loss, AdamW)
          vs a bare torchvision ResNet-50 step (3-channel input, cross-entropy) at the size the backbone
          sees (patch_px / head_downsample): the ratio is what the head, projection, loss and our step cost
  augment time of the augmentation of one batch on the device (the trainer applies it there)
  reader  samples/s of PatchStream.batches (row groups decoded by reader threads, batches assembled in the
          training thread) vs pq.read_table of the same files and columns with zero-copy pixel views:
          on the demo lake's train split (needs `make demo`; --skip-reader leaves it out) and on a scratch
          table of seed-size patches (--seed-px, 0 leaves it out), once for each of --workers
On a GPU also: bf16 autocast for both sides, and channels_last for the bare network (ours: --layouts).
`benchmarks/throughput/gpu.sh` runs the GPU set.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pyarrow.parquet as pq
import torch
from torchvision.models import resnet50

from cytolake.config import load_config
from cytolake.lake import Lake
from cytolake.train.augment import Augment, batch_generator
from cytolake.train.dist import Single
from cytolake.train.model import LAYOUTS, Encoder, with_layout
from cytolake.train.reader import COLUMNS, PatchStream, image_array, snapshot_units
from cytolake.train.trainer import contrastive_loss_step, training_layout
from benchmarks.throughput.timing import call_seconds


def mean_seconds(fn, steps: int, device) -> float:
    return float(np.mean(call_seconds(fn, steps, device)))


def step_ratio(patch_px: int, batch: int, steps: int, device, head_downsample: int = 1,
               layout: str = "contiguous") -> dict:
    bf16 = torch.bfloat16 if device.type == "cuda" else None
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    ours = with_layout(Encoder(head_downsample=head_downsample).to(device), layout)
    x = torch.randn(batch, 1, patch_px, patch_px, device=device).contiguous(memory_format=ours.input_layout)
    p = torch.rand(batch, 100, device=device)
    opt = torch.optim.AdamW(ours.parameters(), lr=1e-4)

    def our_step():
        loss, _ = contrastive_loss_step(ours, x, p, Single(), 0.1, autocast_dtype=bf16)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    bare = resnet50(weights=None).to(device).to(memory_format=fmt)
    bopt = torch.optim.AdamW(bare.parameters(), lr=1e-4)
    side = patch_px // head_downsample
    x3 = torch.randn(batch, 3, side, side, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 1000, (batch,), device=device)

    def bare_step():
        with torch.autocast(device.type, dtype=bf16, enabled=bf16 is not None):
            loss = torch.nn.functional.cross_entropy(bare(x3), y)
        bopt.zero_grad(set_to_none=True)
        loss.backward()
        bopt.step()

    t_ours, t_bare = mean_seconds(our_step, steps, device), mean_seconds(bare_step, steps, device)
    t_aug = mean_seconds(lambda: Augment()(x, batch_generator(0, 0, 0, 0, device)), steps, device)
    return {"patch_px": patch_px, "batch": batch, "head_downsample": head_downsample, "device": str(device),
            "layout": layout, "bf16": device.type == "cuda",
            "ours_samples_per_s": round(batch / t_ours, 2), "bare_resnet50_samples_per_s": round(batch / t_bare, 2),
            "ratio": round(t_bare / t_ours, 3), "augment_ms_per_batch": round(1000 * t_aug, 2)}


def loss_cost(batch: int, areas: int, steps: int, device) -> dict:
    """pmap_contrastive_loss forward+backward at a global batch, vs one bare ResNet-50 step of 32 x 224 px."""
    z = torch.nn.functional.normalize(torch.randn(batch, 128, device=device), dim=1).requires_grad_(True)
    p = torch.rand(batch, areas, device=device)
    from cytolake.train.loss import pmap_contrastive_loss

    def loss_step():
        pmap_contrastive_loss(z, p, 0.1).backward()

    t_loss = mean_seconds(loss_step, steps, device)
    return {"global_batch": batch, "areas": areas, "loss_fwd_bwd_ms": round(1000 * t_loss, 2)}


def reader_ratio(lake: Lake, batch: int, workers: int, repeats: int = 3, shuffle_buffer: int = 2048) -> dict:
    """One epoch of the train split, best of `repeats` for each side (an epoch of the demo lake takes well
    under a second). The baselines decode the same files and columns and take zero-copy numpy views of the
    pixels: one file after another (`plain`), and `workers` files at a time in threads (`plain_threads`,
    what the same number of threads can decode with no shuffle, no batches, no copies)."""
    from concurrent.futures import ThreadPoolExecutor

    units = snapshot_units(lake, splits=["train"])
    files = sorted({u.path for u in units})

    def decoded(f) -> int:
        t = pq.read_table(f, columns=COLUMNS)
        h, w = t["height"][0].as_py(), t["width"][0].as_py()
        t["pmap"].combine_chunks().flatten().to_numpy()
        return sum(len(image_array(img, h, w)) for img in t["image"].chunks)

    def plain(threads: int) -> float:
        t0 = time.perf_counter()
        if threads <= 1:
            n = sum(decoded(f) for f in files)
        else:
            with ThreadPoolExecutor(threads) as pool:
                n = sum(pool.map(decoded, files))
        return n / (time.perf_counter() - t0)

    def reader() -> float:
        t0, m = time.perf_counter(), 0
        for b in PatchStream(units, batch, seed=0, shuffle_buffer=shuffle_buffer).batches(workers):
            m += len(b["patch_id"])
        return m / (time.perf_counter() - t0)

    base, ours = max(plain(1) for _ in range(repeats)), max(reader() for _ in range(repeats))
    threaded = max(plain(workers) for _ in range(repeats))
    return {"plain_pyarrow_samples_per_s": round(base, 1), "plain_threads_samples_per_s": round(threaded, 1),
            "reader_samples_per_s": round(ours, 1), "reader_ratio": round(ours / base, 3),
            "reader_vs_threads": round(ours / threaded, 3), "workers": workers, "batch": batch, "repeats": repeats,
            "shuffle_buffer": shuffle_buffer,
            "files": len(files), "row_groups": len(units)}


def seed_size_lake(root, px: int, n: int) -> Lake:
    """A scratch `patches` table of n patches at px x px (the seed's 2048): noise-textured uint8, real pmaps."""
    from cytolake.schemas import schema

    lake = Lake(root)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (px, px), dtype=np.uint8)
    for chunk in range(0, n, 32):
        rows = [{"patch_id": f"p{i:06d}", "brain_id": "B01", "section_id": 1, "x": i, "y": 0, "split": "train",
                 "label": i % 10, "spacing_um": 2.0, "height": px, "width": px, "content_hash": "h",
                 "tiling_hash": "t", "ref_xyz": [0.0, 0.0, 0.0], "pmap": rng.random(103).tolist(),
                 "image": np.roll(base, i, axis=1).tobytes()} for i in range(chunk, min(n, chunk + 32))]
        lake.write_arrow("patches", schema("patches").table(rows), "append")
    return lake


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="conf/local.yaml")
    p.add_argument("--patch-px", type=int, nargs="*", default=[64])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--head-downsample", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--layouts", nargs="*", choices=LAYOUTS, help="our model's memory layouts to measure "
                   "(default: the trainer's: channels_last on a GPU, contiguous on the CPU)")
    p.add_argument("--skip-reader", action="store_true", help="leave out the demo lake's reader measurement")
    p.add_argument("--workers", type=int, nargs="*", help="reader threads to measure (default: the config's)")
    p.add_argument("--seed-px", type=int, default=2048, help="patch size of the seed-size reader measurement (0: skip)")
    p.add_argument("--seed-samples", type=int, default=192)
    p.add_argument("--seed-batch", type=int, default=16, help="batch of the seed-size reader measurement")
    p.add_argument("--shuffle-buffer", type=int, default=2048, help="shuffle buffer of the seed-size reader measurement")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    layouts = a.layouts or [training_layout(device)]
    res = {"step": [step_ratio(px, a.batch, a.steps, device, a.head_downsample, lay) for px in a.patch_px for lay in layouts],
           "loss": loss_cost(2048, 103, a.steps, device)}
    cfg = load_config(a.config)
    workers = a.workers or [cfg.train.workers]
    if not a.skip_reader:
        res["reader"] = [reader_ratio(Lake(cfg.paths.lake), cfg.train.batch_size, w) for w in workers]
    if a.seed_px:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            big = seed_size_lake(f"{d}/lake", a.seed_px, a.seed_samples)
            res["reader_seed_size"] = [{"patch_px": a.seed_px, **reader_ratio(big, a.seed_batch, w, shuffle_buffer=a.shuffle_buffer)}
                                       for w in workers]
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
