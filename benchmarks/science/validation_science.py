"""What the image features add to the atlas prior, measured on held-out sections of the TRAINING brains only
(the `train` split's annotated sections; no `test` or `transfer` node is read). Two parts, on a lake that
`make demo` has filled (results/science.md, "What the images add to the atlas"):

  probe   For each encoder under paths.models (and the hand-made statistics of patch_information.py): a linear
          probe of the area label fitted on the labelled train-split patches of 3 in 4 sections, macro-F1 on the
          4th; and "prior + correction", logits = log pmap + W h (no bias, L2 weight decay), the simplest form of
          GNN+, against the prior's argmax on the same patches. `--oracle` adds the true-depth profiles of
          neighbour_separability.py (mean grey by the world's own depth of each pixel: an oracle, not an input
          the pipeline has, and no bound on what texture could add); `--area-isolated` adds every feature set
          again on the patch with the cortex of the other areas painted over (the world's truth, an oracle:
          what the features would add if they followed the centre's area, not the window), all held out by
          section; `--no-encoders` leaves the encoders out.
  gnn     GNN+ (or, with `--kind gnn`, the GAT without the prior) by leave-one-section-out over the annotated
          train sections: for each, the GAT trained on the others (validation: a seeded fifth of them) and
          scored on the held-out one with the pipeline's selection (`gnn.train.selected_epoch`), against the
          prior's argmax (GNN+) or the report's linear probe on the same nodes (GNN). `--epochs`, `--patience`,
          `--lr` override the config's `gnn` settings. Classes as the pipeline's (`atlas.merge_hemispheres`).

    .venv/bin/python -m benchmarks.science.validation_science --config conf/local.yaml probe [--oracle] [--area-isolated] [--no-encoders]
    .venv/bin/python -m benchmarks.science.validation_science --config conf/local.yaml gnn --models contrastive-pmap-v1 random-init
    .venv/bin/python -m benchmarks.science.validation_science --config conf/local.yaml gnn --kind gnn --lr 0.02
"""

from __future__ import annotations

import argparse
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cytolake.atlas.classes import classes_of
from cytolake.atlas.registered import area_rows
from cytolake.config import load_config
from cytolake.eval.compare import linear_probe
from cytolake.gnn import train as gnn_train
from cytolake.gnn.data import load_graphs
from cytolake.lake import Lake
from cytolake.metrics import macro_f1
from cytolake.train.model import load_encoder, to_input

from benchmarks.science.patch_information import depth_profile, statistics


PRIOR = "the prior's argmax"
ORACLES = {"all_cortex": "oracle: true-depth profile, all cortex", "own_area": "oracle: true-depth profile, own area",
           "centre_16px": "oracle: true-depth, cortex <= 16 px", "centre_32px": "oracle: true-depth, cortex <= 32 px"}


def sections_of(brains, sections) -> np.ndarray:
    return np.array([f"{b}/{int(s)}" for b, s in zip(brains, sections)])


def corrected_f1(h, log_prior, y, fit, val, wd: float, steps: int = 200) -> float:
    """Macro-F1 on `val` of argmax(log prior + W h), W fitted on `fit` with cross-entropy + wd * |W|^2. As in
    GNN+ (`gnn.model.GAT`'s `correctable`), only the classes with a label in `fit` get a correction: the others
    keep their prior, where an unmasked W pushes every unseen class down at each step."""
    mu, sd = h[fit].mean(0), h[fit].std(0) + 1e-6
    hs = torch.tensor((h - mu) / sd, dtype=torch.float32)
    lp, yt = torch.tensor(log_prior, dtype=torch.float32), torch.tensor(y)
    torch.manual_seed(0)
    w = torch.zeros(h.shape[1], lp.shape[1], requires_grad=True)
    mask = torch.zeros(lp.shape[1])
    mask[np.unique(y[fit])] = 1.0
    opt = torch.optim.Adam([w], lr=0.01)
    f = torch.from_numpy(fit)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lp[f] + hs[f] @ (w * mask), yt[f]) + wd * (w ** 2).sum()
        loss.backward()
        opt.step()
    v = torch.from_numpy(val)
    return macro_f1(y[val], (lp[v] + hs[v] @ (w.detach() * mask)).argmax(1).numpy())


def probe(cfg, oracle: bool = False, encoders: bool = True, isolated: bool = False) -> None:
    lake = Lake(cfg.paths.lake)
    t = lake.read("patches", ["brain_id", "section_id", "x", "y", "label", "split", "height", "width", "image", "pmap"])
    t = t.filter(pc.and_(t["label"].is_valid(), pc.equal(t["split"], "train")))
    h, w = t["height"][0].as_py(), t["width"][0].as_py()
    images = np.stack([np.frombuffer(v, np.uint8) for v in t["image"].to_pylist()]).reshape(-1, h, w)
    classes = classes_of(area_rows(lake), cfg.atlas.merge_hemispheres)
    y = classes.label(np.array(t["label"].to_pylist()))
    pmap = classes.pmap(np.stack(t["pmap"].to_numpy(zero_copy_only=False))).astype(np.float64)
    sec = sections_of(t["brain_id"].to_pylist(), t["section_id"].to_pylist())
    names = sorted(set(sec))
    val = np.isin(sec, names[::4])
    fit = ~val
    log_prior = np.log(pmap + 1e-3)
    print(f"{len(y)} labelled train-split patches: fit {fit.sum()} ({len(names) - len(names[::4])} sections), "
          f"validation {val.sum()} ({', '.join(names[::4])})")
    print(f"{'features':40s} probe   prior+correction wd 10 / 1 / 0.1 / 0.01 (prior alone "
          f"{macro_f1(y[val], pmap[val].argmax(1)):.3f})")
    models = sorted(p for p in Path(cfg.paths.models).iterdir() if (p / "encoder.pt").is_file()) if encoders else []

    def feature_sources(imgs) -> dict:
        """Each feature set of the patches `imgs` (n, h, w) uint8, computed when first asked for."""
        stats = cache(lambda: np.stack([statistics(p.astype(np.float32)) for p in imgs()]))
        profiles = cache(lambda: np.stack([depth_profile(p.astype(np.float32)) for p in imgs()]))
        out = {"hand-made statistics": stats, "depth profile": profiles,
               "hand-made statistics + depth profile": lambda: np.c_[stats(), profiles()]}
        for d in models:
            def features(d=d):
                model, x = load_encoder(d), imgs()
                with torch.no_grad():
                    return np.concatenate([model.features(to_input(torch.from_numpy(x[i:i + 256].copy()))).numpy()
                                           for i in range(0, len(x), 256)])
            out[d.name] = cache(features)
        return out

    full = feature_sources(lambda: images)
    sources = dict(full)
    held_out = list(ORACLES.values()) if oracle else []
    if oracle or isolated:  # the world's own depth of every pixel (neighbour_separability.true_depth_profiles): not an input
        from benchmarks.science.neighbour_separability import true_depth_profiles

        true_depth = cache(lambda: true_depth_profiles(cfg, np.array(t["brain_id"].to_pylist()),
                                                       np.array(t["section_id"].to_pylist()),
                                                       np.array(t["x"].to_pylist(), float),
                                                       np.array(t["y"].to_pylist(), float), h))
        for kind, label in ORACLES.items():
            sources[label] = lambda kind=kind: true_depth().profiles[kind]
    if isolated:  # the same features of the patch with the neighbouring areas' cortex painted over: an oracle
        def isolated_images():
            td = true_depth()
            fill = np.clip(np.round(td.fill), 0, 255).astype(np.uint8)[:, None, None]
            return np.where(td.neighbour_cortex, fill, images)

        sources.update({f"{k}, area isolated": v for k, v in feature_sources(cache(isolated_images)).items()})
        held_out += [k for name in full for k in (name, f"{name}, area isolated")]
    for name, make in sources.items():
        x = make()
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5)).fit(x[fit], y[fit])
        corr = [corrected_f1(x, log_prior, y, fit, val, wd) for wd in (10.0, 1.0, 0.1, 0.01)]
        print(f"{name:40s} {macro_f1(y[val], clf.predict(x[val])):.3f}   " + " / ".join(f"{c:.3f}" for c in corr), flush=True)
    if held_out:  # the split above holds 2 sections: each annotated train section held out in turn
        held = [sec == n for n in names]
        prior = [macro_f1(y[v], pmap[v].argmax(1)) for v in held]
        print(f"leave-one-section-out over {len(names)} sections (sd with ddof=1): prior alone {np.mean(prior):.3f} "
              f"± {np.std(prior, ddof=1):.3f}")
        scores = {}
        for name in held_out:
            for wd in (0.1, 0.01):
                f1 = scores[name, wd] = np.array([corrected_f1(sources[name](), log_prior, y, ~v, v, wd) for v in held])
                print(f"  {name}, prior+correction wd {wd}: {f1.mean():.3f} ± {f1.std(ddof=1):.3f} "
                      f"({paired(f1 - np.array(prior), 'gain over the prior')})", flush=True)
                if name.endswith(", area isolated"):  # the same sections with and without the neighbours' cortex
                    print(f"    {paired(f1 - scores[name.removesuffix(', area isolated'), wd], 'isolating the area')}")


def paired(d: np.ndarray, what: str) -> str:
    """Mean ± sd (ddof=1) of per-section differences, with the standard error of the mean."""
    return f"{what} {d.mean():+.3f} ± {d.std(ddof=1):.3f}, standard error {d.std(ddof=1) / np.sqrt(len(d)):.3f}"


def gnn(cfg, models: list[str], kind: str = "gnn+") -> None:
    """Each annotated train section held out in turn: the GAT (`kind`) trained on the others with the
    pipeline's `fit` and selection, and beside it the prior's argmax (gnn+) or the report's linear probe on
    the same nodes (gnn), macro-F1 on the held-out section."""
    lake = Lake(cfg.paths.lake)
    rule = "paired-bootstrap selection"
    baseline = PRIOR if kind == "gnn+" else "linear probe"
    for model in models:
        gs = load_graphs(lake, model, merge_hemispheres=cfg.atlas.merge_hemispheres)
        n_classes = len(gs.classes)
        x, prior = gnn_train.node_inputs(gs, kind, cfg.gnn.standardise), gnn_train.node_prior(gs, kind)
        pt = None if prior is None else torch.from_numpy(prior)
        ei = torch.from_numpy(np.stack([gs.src, gs.dst])).long()
        annotated = (gs.split == "train") & (gs.label >= 0)
        sec = gs.section_key
        names = sorted(set(sec[annotated]))
        scores = {baseline: [], rule: []}
        for k, held in enumerate(names):
            out = annotated & (sec == held)
            rest = [n for n in names if n != held]
            rng = np.random.default_rng(k)
            val = annotated & ~out & np.isin(sec, rng.choice(rest, max(1, round(0.2 * len(rest))), replace=False))
            train = annotated & ~out & ~val
            base = prior.argmax(1) if kind == "gnn+" else linear_probe(gs, train | val, cfg.gnn.standardise)
            scores[baseline].append(macro_f1(gs.label[out], base[out]))
            f = gnn_train.fit(x, gs.src, gs.dst, gs.label, train, val, n_classes, cfg.gnn, lambda *a: None, prior)
            pred = gnn_train.predict(f.model, torch.from_numpy(x), ei, pt).argmax(1)
            scores[rule].append(macro_f1(gs.label[out], pred[out]))
            print(f"  {model} held out {held}: {rule}: epoch {f.best_epoch} kept of {len(f.history) - 1} "
                  f"(train F1 {f.history[f.best_epoch]['train_f1']:.3f}), {scores[rule][-1]:.3f} "
                  f"({baseline} {scores[baseline][-1]:.3f})", flush=True)
        for name, v in scores.items():
            print(f"{model:24s} {kind:4s} {name:24s} {np.mean(v):.3f} ± {np.std(v):.3f} over {len(v)} held-out sections")
        print(f"{model:24s} {kind:4s} {rule}: {paired(np.array(scores[rule]) - scores[baseline], 'against ' + baseline)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="conf/local.yaml")
    ap.add_argument("part", choices=["probe", "gnn"])
    ap.add_argument("--models", nargs="+", default=["contrastive-pmap-v1", "random-init"])
    ap.add_argument("--oracle", action="store_true",
                    help="probe: also the true-depth oracle (mean grey by each pixel's depth from the world's truth)")
    ap.add_argument("--no-encoders", action="store_true", help="probe: only the hand-made features (and the oracle)")
    ap.add_argument("--kind", choices=["gnn", "gnn+"], default="gnn+", help="gnn: the GAT without the prior")
    ap.add_argument("--epochs", type=int, help="gnn: overrides gnn.epochs")
    ap.add_argument("--patience", type=int, help="gnn: overrides gnn.patience")
    ap.add_argument("--lr", type=float, help="gnn: overrides gnn.lr")
    ap.add_argument("--area-isolated", action="store_true",
                    help="probe: also every feature set on the patch with the cortex of areas other than the centre's "
                         "painted over with its white-matter grey (the world's truth: an oracle), held out by section")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    cfg = load_config(a.config)
    if a.part == "probe":
        probe(cfg, a.oracle, not a.no_encoders, a.area_isolated)
    else:
        budget = {k: v for k, v in {"epochs": a.epochs, "patience": a.patience, "lr": a.lr}.items() if v is not None}
        settings = type(cfg.gnn).model_validate(cfg.gnn.model_dump() | budget)  # a bad override fails here
        gnn(cfg.model_copy(update={"gnn": settings}), a.models, a.kind)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
