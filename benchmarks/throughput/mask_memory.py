"""Peak memory of the cortex mask of a section WITHOUT a pyramid, as the section grows (it must not grow).

    .venv/bin/python -m benchmarks.throughput.mask_memory [--sizes 10240 20480 40960] [--source-um 2] [--mask-um 320]

For each size, a square single-level tiled BigTIFF (512 px tiles, zlib; a bright field with a dark ring of
'cortex') at `--source-um` per pixel is written. Then, each in a fresh process:
  baseline  the imports of a tiling task, nothing read (the same run's reference)
  mask      `section_cortex_mask` on the section, as stage A of tiling and build_graph call it
Figures: peak RSS (VmHWM) above the baseline (MB), seconds, the mask's size, and the uncompressed size of
level 0, which is what a whole-level read (the code before issue 19) held at least, before its float copies.
Needs no lake.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.throughput.child import peak_mb, run_child

MODULE = "benchmarks.throughput.mask_memory"  # its stages run as `python -m MODULE --child ...`
TILE = 512


def child(stage: str, image: str, args: dict) -> dict:
    import scipy.ndimage  # noqa: F401  (the imports a tiling task has)
    import skimage.filters  # noqa: F401

    from cytolake.io.images import read_info
    from cytolake.tiling.mask import section_cortex_mask

    if stage == "baseline":
        return {"peak_mb": peak_mb()}
    info = read_info(image)
    t0 = time.perf_counter()
    mask, scale = section_cortex_mask(image, args["source_um"], info.level_shapes, args["mask_um"], None)
    return {"peak_mb": peak_mb(), "seconds": round(time.perf_counter() - t0, 1), "mask": list(mask.shape),
            "cortex": round(float(mask.mean()), 3)}


def write_section(path: Path, px: int, source_um: float) -> None:
    import tifffile

    def tiles():
        for r in range(0, px, TILE):
            for c in range(0, px, TILE):  # whole tiles dark or bright: cheap to write, the same to read
                d = np.hypot(r + TILE / 2 - px / 2, c + TILE / 2 - px / 2) / px
                yield np.full((TILE, TILE), 80 if 0.25 < d < 0.4 else 230, np.uint8)

    res = 1e4 / source_um
    tifffile.imwrite(path, tiles(), shape=(px, px), dtype=np.uint8, tile=(TILE, TILE), bigtiff=True,
                     compression="zlib", photometric="minisblack", resolution=(res, res), resolutionunit="CENTIMETER")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10240, 20480, 40960])
    p.add_argument("--source-um", type=float, default=2.0)
    p.add_argument("--mask-um", type=float, default=320.0)
    p.add_argument("--child", choices=["baseline", "mask"], help=argparse.SUPPRESS)
    p.add_argument("--image", help=argparse.SUPPRESS)
    p.add_argument("--args", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    args = {"source_um": a.source_um, "mask_um": a.mask_um}
    if a.child:
        print(json.dumps(child(a.child, a.image, json.loads(a.args))))
        return
    baseline = run_child(MODULE, "baseline", None, args)["peak_mb"]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for px in sorted(a.sizes):
            image = Path(d) / f"flat_{px}.tif"
            t0 = time.perf_counter()
            write_section(image, px, a.source_um)
            print(f"{px} px: written in {time.perf_counter() - t0:.0f} s ({image.stat().st_size / 1e6:.1f} MB file)",
                  file=sys.stderr, flush=True)
            m = run_child(MODULE, "mask", image, args)
            rows.append({"px": px, "level0_MB": round(px * px / 1e6, 1), "file_MB": round(image.stat().st_size / 1e6, 1),
                         "mask": m["mask"], "mask_MB": round(m["peak_mb"] - baseline, 1), "seconds": m["seconds"],
                         "cortex_fraction": m["cortex"]})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            image.unlink()
    for r in rows:
        r["ratio"] = round(r["mask_MB"] / rows[0]["mask_MB"], 2) if rows[0]["mask_MB"] > 0 else None
    print(json.dumps({"baseline_MB": round(baseline, 1), "source": f"{a.source_um:g} um/px, no pyramid",
                      "mask": f"{a.mask_um:g} um", "sizes": rows}, indent=2))


if __name__ == "__main__":
    main()
