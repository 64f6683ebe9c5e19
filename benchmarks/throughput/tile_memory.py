"""Peak memory of a tiling task as the section grows (it must not grow with the section).

    .venv/bin/python -m benchmarks.throughput.tile_memory --config conf/local.yaml [--sizes 10240 30720 61440]
        [--source-um 2] [--patch-px 256] [--spacing-um 4] [--stride-um 1000]

For each size, a square section at `--source-um` per pixel (61440 px at 2 um: 123 mm, a whole human
coronal section) is written as a pyramidal TIFF, made of a demo section repeated so the share of tissue
stays the same. Then, each in a fresh process, with the tiling code the job runs:
  baseline  the imports of a tiling task, nothing read (the same run's reference)
  stage A   `section_centres` on the whole section: the mask from a coarse pyramid level, the grid
            centres, their reference positions (one Spark task per section in the job)
  stage B   `cut_blocks` over every window block of the section, one after the other, as a Spark task
            of the job cuts the blocks of its partition, each block's output dropped before the next
Figures: peak RSS above the baseline for stage A, peak RSS above the RSS at its start for stage B
(the centre rows it is given are its input, held before it starts; MB), the ratio of each size's figure to the smallest
size's (1.0 = does not grow), and the uncompressed size of the level the patches are cut from, which
is what a task that read the whole level would need.
The demo lake must exist (`make demo`): its first section is the texture.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.throughput.child import peak_mb, reset_peak, run_child

MODULE = "benchmarks.throughput.tile_memory"  # its stages run as `python -m MODULE --child ...`


def child(stage: str, image: str, args: dict) -> dict:
    """Run one stage in this (fresh) process; peak RSS in MB and what was done."""
    from cytolake.config import load_config
    from cytolake.io.images import read_info
    from cytolake.tiling.geometry import patch_geometry
    from cytolake.tiling.patches import blocks_of, cut_blocks
    from cytolake.tiling.sections import section_centres

    cfg = load_config(args["config"])
    tiling = cfg.tiling.model_copy(update={"patch_px": args["patch_px"], "spacing_um": args["spacing_um"],
                                           "stride_um": args["stride_um"]})
    if stage == "baseline":
        return {"peak_mb": peak_mb()}
    sp = args["source_um"]
    info = read_info(image)
    affine = [sp / 1000, 0, 0, -60.0, 0, 0, 0.02, -20.0, 0, -sp / 1000, 0, 60.0, 0, 0, 0, 1]
    sec = {"image_uri": image, "spacing_um": sp, "transform": affine, "brain_id": "M01", "section_id": 1,
           "annotation_uri": None, "content_hash": "bench"}
    t0 = time.perf_counter()
    rows, err = section_centres(sec, tiling, "train", np.eye(4), {}, "bench")
    if err:
        raise SystemExit(err)
    out = {"patches": rows.num_rows, "level": patch_geometry(tiling, sp, info.levels).level}
    if stage == "a":
        return {**out, "peak_mb": peak_mb(), "seconds": round(time.perf_counter() - t0, 1)}
    blocks = list(blocks_of(rows))
    del rows
    gc.collect()
    held = reset_peak()  # the centre rows are stage B's input here, not part of a block task's memory
    t0 = time.perf_counter()
    largest = 0
    for got in cut_blocks(blocks.pop(0) for _ in range(len(blocks))):
        largest = max(largest, got.num_rows)
        del got
    return {**out, "blocks_largest_patches": largest, "task_mb": peak_mb() - held,
            "seconds": round(time.perf_counter() - t0, 1)}


def write_section(path: Path, px: int, texture: np.ndarray, source_um: float) -> None:
    """A px x px pyramidal TIFF of `texture` repeated, built through a memory map (never px^2 in RAM twice)."""
    from cytolake.io.images import write_pyramid_tiff

    mm = np.lib.format.open_memmap(path.with_suffix(".npy"), mode="w+", dtype=np.uint8, shape=(px, px))
    th, tw = texture.shape
    row = np.tile(texture, (1, px // tw + 1))[:, :px]
    for r in range(0, px, th):
        mm[r:r + th] = row[: px - r]
    mm.flush()
    write_pyramid_tiff(path, mm, source_um, tile=512, min_px=256)
    del mm
    path.with_suffix(".npy").unlink()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="conf/local.yaml")
    p.add_argument("--sizes", type=int, nargs="+", default=[10240, 30720, 61440])
    p.add_argument("--source-um", type=float, default=2.0)
    p.add_argument("--patch-px", type=int, default=256)
    p.add_argument("--spacing-um", type=float, default=4.0)
    p.add_argument("--stride-um", type=float, default=1000.0)
    p.add_argument("--child", choices=["baseline", "a", "b"], help=argparse.SUPPRESS)
    p.add_argument("--image", help=argparse.SUPPRESS)
    p.add_argument("--args", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child, a.image, json.loads(a.args))))
        return
    import tifffile

    from cytolake.config import load_config
    from cytolake.lake import Lake

    cfg = load_config(a.config)
    lake = Lake(cfg.paths.lake)
    if not lake.exists("sections"):
        raise SystemExit(f"no lake at {cfg.paths.lake}: run `make demo` first")
    texture = tifffile.imread(lake.read("sections", ["image_uri"])["image_uri"][0].as_py())
    args = {"config": str(Path(a.config).resolve()), "source_um": a.source_um, "patch_px": a.patch_px,
            "spacing_um": a.spacing_um, "stride_um": a.stride_um}
    baseline = run_child(MODULE, "baseline", None, args)["peak_mb"]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for px in sorted(a.sizes):
            image = Path(d) / f"section_{px}.tif"
            t0 = time.perf_counter()
            write_section(image, px, texture, a.source_um)
            print(f"{px} px: written in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
            sa, sb = run_child(MODULE, "a", image, args), run_child(MODULE, "b", image, args)
            level_px = -(-px // 2 ** sa["level"])
            rows.append({"px": px, "mm": round(px * a.source_um / 1000, 1), "patches": sa["patches"],
                         "level": sa["level"], "level_MB": round(level_px**2 / 1e6, 1),
                         "stage_a_MB": round(sa["peak_mb"] - baseline, 1), "stage_a_s": sa["seconds"],
                         "stage_b_MB": round(sb["task_mb"], 1), "stage_b_s": sb["seconds"],
                         "largest_block_patches": sb["blocks_largest_patches"]})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            image.unlink()
    first = rows[0]
    for r in rows:
        r["stage_a_ratio"] = round(r["stage_a_MB"] / first["stage_a_MB"], 2)
        r["stage_b_ratio"] = round(r["stage_b_MB"] / first["stage_b_MB"], 2)
    print(json.dumps({"baseline_MB": round(baseline, 1), "patch": f"{a.patch_px} px at {a.spacing_um:g} um, "
                      f"stride {a.stride_um:g} um, source {a.source_um:g} um/px", "sizes": rows}, indent=2))


if __name__ == "__main__":
    main()
