"""Tiling throughput as a ratio against the same run's baseline.

    .venv/bin/python -m benchmarks.throughput.tile --config conf/local.yaml [--large-px 20480] [--large-spacing-um 16] [--large-stride-um 250]
        [--skip-large] [--scaling]

Figures, per input (the demo lake; one large synthetic section):
  tile      patches/s and source MB/s per core of `run_tile` (Spark local[*], includes the pmap join and the commit)
  baseline  the same windows read with tifffile (zarr interface) in one process: patches/s, MB/s
  ratio     tile per core / baseline  (the figure: 1.0 means tiling costs no more than reading the pixels)
with `--scaling`, the demo lake tiled again on local[1] and on local[2] (fresh Spark sessions, same run):
patches/s of each and their quotient (2.0 = two executor cores do twice the work of one);
and the storage trade-off of the patch pixels: raw uint8 in zstd Parquet (what `patches` stores) against
PNG bytes in Parquet, as bytes on disk and decode throughput into numpy.
The demo lake must exist (`make demo`); the job tiles into a scratch copy, the lake is not changed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cytolake.config import Paths, load_config
from cytolake.engines.spark import spark_session
from cytolake.io.images import LevelReader, read_info, write_pyramid_tiff
from cytolake.io.manifest import write_manifest
from cytolake.lake import Lake
from cytolake.tiling.geometry import patch_geometry, window_origin
from cytolake.tiling.job import run_tile


def baseline_read(lake: Lake, tiling) -> tuple[float, int, int]:
    """Seconds to read every patch's window with tifffile in one process; (seconds, patches, source bytes)."""
    secs = {(s["brain_id"], s["section_id"]): s for s in lake.read("sections").to_pylist()}
    rows = lake.read("patches", ["brain_id", "section_id", "x", "y"]).to_pylist()
    by_section: dict = {}
    for r in rows:
        by_section.setdefault((r["brain_id"], r["section_id"]), []).append(r)
    t0, nbytes = time.perf_counter(), 0
    for key, rs in by_section.items():
        s = secs[key]
        g = patch_geometry(tiling, s["spacing_um"], s["levels"])
        with LevelReader(s["image_uri"], g.level) as lr:
            for r in rs:
                top, left = window_origin(r["x"], r["y"], g.level, g.window_px)
                nbytes += lr.window(int(top), int(left), g.window_px, g.window_px).size
    return time.perf_counter() - t0, len(rows), nbytes


def tile_run(cfg, spark) -> dict:
    lake = Lake(cfg.paths.lake)
    t0 = time.perf_counter()
    summary = run_tile(cfg, spark, log=lambda *a: None)
    t_tile = time.perf_counter() - t0
    n = sum(summary.tiled.values())
    t_base, n_base, nbytes = baseline_read(lake, cfg.tiling)
    cores = spark.sparkContext.defaultParallelism
    per_core = n / t_tile / cores
    base = n_base / t_base
    return {"patches": n, "sections": len(summary.tiled), "cores": cores, "tile_s": round(t_tile, 2),
            "tile_patches_per_s_per_core": round(per_core, 1),
            "tile_source_MB_per_s_per_core": round(nbytes / 1e6 / t_tile / cores, 2),
            "baseline_s": round(t_base, 2), "baseline_patches_per_s": round(base, 1),
            "baseline_source_MB_per_s": round(nbytes / 1e6 / t_base, 2), "ratio": round(per_core / base, 3)}


def scratch_lake(src: Path, dst: Path) -> None:
    """A copy of the lake's registry tables, without patches."""
    for t in ("areas", "pmaps", "sections", "brains"):
        shutil.copytree(src / t, dst / t)


def large_section(cfg, landing: Path, px: int) -> None:
    """One px x px section made by tiling a demo section, as brain L01 with its manifest."""
    src = Lake(cfg.paths.lake).read("sections").to_pylist()[0]
    import tifffile

    tile = tifffile.imread(src["image_uri"])
    reps = (px // tile.shape[0] + 1, px // tile.shape[1] + 1)
    img = np.tile(tile, reps)[:px, :px]
    sp = 140_000.0 / px  # 140 mm across, whatever the pixel count
    d = landing / "L01" / "images"
    d.mkdir(parents=True)
    write_pyramid_tiff(d / "section_0001.tif", img, sp, tile=256, min_px=256)
    a = [sp / 1000, 0, 0, -70.0, 0, 0, 0.02, -20.0, 0, -sp / 1000, 0, 70.0, 0, 0, 0, 1]
    write_manifest(landing / "L01" / "manifest.csv", [{"brain_id": "L01", "section_id": 1, "spacing_um": sp,
                                                       "image_path": "images/section_0001.tif", "transform": a}])


def storage(lake: Lake, n: int = 3000) -> dict:
    """Raw uint8 in zstd Parquet vs PNG in Parquet: bytes and decode throughput of the same patches."""
    from PIL import Image

    t = lake.read("patches", ["height", "width", "image"]).slice(0, n)
    h, w = t["height"][0].as_py(), t["width"][0].as_py()
    raw = t["image"].to_pylist()
    pngs = []
    for b in raw:
        buf = io.BytesIO()
        Image.fromarray(np.frombuffer(b, np.uint8).reshape(h, w)).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name, col, comp in (("raw_zstd", raw, "zstd"), ("png", pngs, "none")):
            p = Path(d) / f"{name}.parquet"
            pq.write_table(pa.table({"image": pa.array(col, pa.binary())}), p, compression=comp)
            t0 = time.perf_counter()
            col2 = pq.read_table(p)["image"].to_pylist()
            if name == "png":
                arrs = [np.asarray(Image.open(io.BytesIO(b))) for b in col2]
            else:
                arrs = [np.frombuffer(b, np.uint8).reshape(h, w) for b in col2]
            dt = time.perf_counter() - t0
            assert len(arrs) == len(raw)
            out[name] = {"bytes_per_patch": round(p.stat().st_size / len(raw)), "decode_patches_per_s": round(len(raw) / dt)}
    out["png_vs_raw_size"] = round(out["png"]["bytes_per_patch"] / out["raw_zstd"]["bytes_per_patch"], 3)
    out["raw_vs_png_read_speed"] = round(out["raw_zstd"]["decode_patches_per_s"] / out["png"]["decode_patches_per_s"], 1)
    return out


def scaling(cfg, src: Path, scratch: Path) -> dict:
    """The demo lake tiled on 1 and on 2 executor cores, each in a fresh local Spark session."""
    from pyspark.sql import SparkSession

    out = {}
    for cores in (1, 2):
        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
        spark = spark_session(cfg.spark.model_copy(update={"master": f"local[{cores}]"}))
        spark.range(10).count()
        lake = scratch / f"lake_{cores}"
        scratch_lake(src, lake)
        out[f"local[{cores}]"] = tile_run(cfg.model_copy(update={"paths": Paths(lake=lake, landing=cfg.paths.landing)}), spark)
    one, two = (out[f"local[{c}]"]["patches"] / out[f"local[{c}]"]["tile_s"] for c in (1, 2))
    out["speedup_2_vs_1"] = round(two / one, 2)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="conf/local.yaml")
    p.add_argument("--large-px", type=int, default=20480)
    p.add_argument("--large-spacing-um", type=float, default=16.0, help="patch spacing on the large section")
    p.add_argument("--large-stride-um", type=float, default=250.0, help="patch stride on the large section")
    p.add_argument("--skip-large", action="store_true")
    p.add_argument("--scaling", action="store_true", help="also tile the demo lake on local[1] and local[2]")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    src = Path(cfg.paths.lake)
    if not (src / "sections").is_dir():
        raise SystemExit(f"no lake at {src}: run `make demo` first")
    spark = spark_session(cfg.spark)
    spark.range(10).count()  # start-up is not tiling
    results = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as d:
        d = Path(d)
        scratch_lake(src, d / "lake")
        c = cfg.model_copy(update={"paths": Paths(lake=d / "lake", landing=cfg.paths.landing)})
        results["demo_lake"] = tile_run(c, spark)
        results["storage"] = storage(Lake(d / "lake"))
        if not a.skip_large:
            from cytolake.ingest.job import run_ingest

            large = d / "landing"
            large_section(c, large, a.large_px)
            tiling = cfg.tiling.model_copy(update={"spacing_um": a.large_spacing_um, "stride_um": a.large_stride_um})
            lc = cfg.model_copy(update={"paths": Paths(lake=d / "large_lake", landing=large), "tiling": tiling})
            scratch_lake(src, d / "large_lake")
            shutil.rmtree(d / "large_lake" / "sections")
            shutil.rmtree(d / "large_lake" / "brains")
            run_ingest(lc, spark, log=lambda *a: None)
            info = read_info(large / "L01" / "images" / "section_0001.tif")
            results["large_section"] = {"px": f"{info.width}x{info.height}", "spacing_um": round(info.spacing_um, 3),
                                        "patch": f"{tiling.patch_px} px at {tiling.spacing_um:g} um, stride {tiling.stride_um:g} um",
                                        **tile_run(lc, spark)}
        if a.scaling:
            results["scaling"] = scaling(cfg, src, d)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
