"""The seed's whole comparison repeated over synthetic worlds: for each world seed (brains, parcellations,
laminar variation, staining, artifacts), the demo's pipeline on a lake of its own, then the table of
macro-F1 as mean ± sd over world seeds (each world's own value being the mean over its GNN seeds), the
per-world check of the issue's targets, and with --write the lot appended to the science history,
benchmarks/results/science.md.

    .venv/bin/python -m benchmarks.science.worlds --config conf/local.yaml [--seeds 0 1 2] [--write]

Each world lives in data/science/seed-<N>/ (landing, lake, models, reports) and is reused when it is
there (every job is incremental), so an interrupted run goes on where it stopped. About the demo's time
per world on 2 cores. Nothing here is tuned: every world uses the config's settings, only synth.seed moves.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml

from cytolake.config import load_config

ROOT = Path(__file__).resolve().parents[2]

# The demo's feature models: (model version, train_contrastive objective); random-init is never trained.
TRAINED = (("contrastive-pmap-v1", "contrastive"), ("contrastive-sup-v1", "contrastive-label"), ("supervised-v1", "supervised"))
MODELS = [m for m, _ in TRAINED] + ["random-init"]
ORDER = ("sup", "cont-sup", "cont-pmap", "random-init")


def world_config(base: Path, seed: int, out: Path) -> Path:
    raw = yaml.safe_load(base.read_text())
    raw["synth"] = {**raw.get("synth", {}), "seed": seed}
    raw["paths"] = {k: str(out / k) for k in ("lake", "landing", "models", "reports")}
    conf = out / "conf.yaml"
    out.mkdir(parents=True, exist_ok=True)
    conf.write_text(yaml.safe_dump(raw))
    return conf


def run_world(conf: Path) -> dict:
    py, jobs = sys.executable, ROOT / "jobs"
    steps = [[py, jobs / "synthesize.py"], [py, jobs / "ingest.py"], [py, jobs / "tile.py"]]
    steps += [[py, jobs / "train_contrastive.py", "--objective", o, "--model-version", m] for m, o in TRAINED]
    steps += [[py, jobs / "build_graph.py", "--model", m] for m in MODELS]
    steps += [[py, jobs / "evaluate.py", "--models", *MODELS]]
    for cmd in steps:
        t0 = time.perf_counter()
        subprocess.run([str(c) for c in cmd[:2]] + ["--config", str(conf)] + [str(c) for c in cmd[2:]], check=True,
                       stdout=subprocess.DEVNULL)
        print(f"  {Path(cmd[1]).stem} {' '.join(map(str, cmd[2:]))}: {time.perf_counter() - t0:.0f} s", flush=True)
    reports = Path(load_config(conf).paths.reports)
    newest = max(reports.glob("eval-*/scores.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(newest.read_text())


def checks(s: dict) -> dict[str, bool]:
    """The issue's targets for one world (GNN values: mean over its GNN seeds)."""
    methods = ("pmap-argmax", "linear", "gnn", "gnn+")
    m = {f: {meth: {sp: float(np.mean(v)) for sp, v in s[f][meth].items()} for meth in methods} for f in s}
    out = {}
    for sp in ("test", "transfer"):
        out[f"GNN+ cont-pmap >= pmap-argmax + 0.05 ({sp})"] = m["cont-pmap"]["gnn+"][sp] >= m["cont-pmap"]["pmap-argmax"][sp] + 0.05
        low = s["cont-pmap"].get("gnn+_minus_atlas_95", {}).get(sp, [None])[0]
        low = float("nan") if low is None else low  # None: one section, no interval
        out[f"GNN+ cont-pmap - pmap-argmax: paired 95 % interval above 0 ({sp}, low {low:+.3f})"] = low > 0
        for meth in ("linear", "gnn"):
            out[f"cont-pmap > random-init, {meth} ({sp})"] = m["cont-pmap"][meth][sp] > m["random-init"][meth][sp]
        out[f"GNN+ > GNN > linear for every feature model ({sp})"] = all(
            m[f]["gnn+"][sp] > m[f]["gnn"][sp] > m[f]["linear"][sp] for f in m)
    return out


def table(worlds: dict[int, dict]) -> str:
    lines = [f"| features | {' | '.join(f'{meth} {sp}' for meth in ('linear', 'GNN', 'GNN+') for sp in ('test', 'transfer'))} |",
             "|---" * 7 + "|"]
    first = next(iter(worlds.values()))
    for f in [f for f in ORDER if f in first]:
        cells = []
        for meth in ("linear", "gnn", "gnn+"):
            for sp in ("test", "transfer"):
                v = [float(np.mean(w[f][meth][sp])) for w in worlds.values()]
                cells.append(f"{np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.3f}")
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    cells = []
    for sp in ("test", "transfer"):
        v = [float(np.mean(w['cont-pmap']['pmap-argmax'][sp])) for w in worlds.values()]
        cells.append(f"{np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.3f}")
    lines.append("| pmap-argmax (atlas alone) | " + " | ".join(cells * 3) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="conf/local.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--write", action="store_true", help="append the result to benchmarks/results/science.md")
    a = p.parse_args(argv)
    worlds = {}
    t0 = time.perf_counter()
    for seed in a.seeds:
        print(f"world seed {seed}", flush=True)
        worlds[seed] = run_world(world_config(Path(a.config), seed, ROOT / "data" / "science" / f"seed-{seed}"))
        for name, ok in checks(worlds[seed]).items():
            print(f"  {'met   ' if ok else 'MISSED'} {name}")
    out = [f"### Science benchmark, {datetime.now(timezone.utc):%Y-%m-%d} ({len(worlds)} world seeds, "
           f"{(time.perf_counter() - t0) / 60:.0f} min)", "",
           f"Command: `.venv/bin/python -m benchmarks.science.worlds --config {a.config} --seeds {' '.join(map(str, a.seeds))}{' --write' if a.write else ''}`. "
           "Macro-F1, mean ± sd over world seeds (each world: mean over its GNN seeds).", "", table(worlds), "",
           "Targets per world seed:", ""]
    for seed, s in worlds.items():
        c = checks(s)
        out.append(f"- seed {seed}: " + "; ".join(f"{k}: {'met' if v else 'missed'}" for k, v in c.items()))
    text = "\n".join(out) + "\n"
    print(text)
    if a.write:
        with open(ROOT / "benchmarks" / "results" / "science.md", "a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
