"""The evaluation report: a markdown file with the comparison table, per-area F1, and PNG figures
(confusion matrix, predicted-area maps over section thumbnails, a 2-D embedding, cluster maps)."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402

from cytolake.eval.compare import METHODS, ModelResult  # noqa: E402
from cytolake.export.clusters import reduced  # noqa: E402
from cytolake.io.images import LevelReader, read_info  # noqa: E402
from cytolake.io.pyramid import finest_level_within  # noqa: E402
from cytolake.metrics import per_area_f1  # noqa: E402


POSTER_ORDER = ("sup", "cont-sup", "cont-pmap", "random-init")


def _cell(r: ModelResult, method: str, split: str) -> str:
    key = f"{split}_macro_f1"
    if len(r.seed_scores[method]) > 1:
        return f"{r.mean(method, key):.3f} ± {r.sd(method, key):.3f}"
    return f"{r.mean(method, key):.3f}"


def ordered(results: list[ModelResult]) -> list[ModelResult]:
    """The poster's row order: sup, cont-sup, cont-pmap, then random-init and anything else."""
    rank = {name: i for i, name in enumerate(POSTER_ORDER)}
    return sorted(results, key=lambda r: rank.get(r.feature_model, len(rank)))


def comparison_table(results: list[ModelResult]) -> str:
    """Markdown, the poster's layout: a row per feature model, linear / GNN / GNN+ on test and transfer
    (mean ± sd over the GNN seeds), and the atlas alone (pmap-argmax) as the last row."""
    lines = ["| features | linear test | linear transfer | GNN test | GNN transfer | GNN+ test | GNN+ transfer |",
             "|---|---|---|---|---|---|---|"]
    for r in ordered(results):
        cells = [_cell(r, m, s) for m in ("linear", "gnn", "gnn+") for s in ("test", "transfer")]
        lines.append(f"| {r.feature_model} (`{r.model_version}`) | " + " | ".join(cells) + " |")
    r = results[0]
    lines.append("| pmap-argmax (atlas alone, no image) | " + " | ".join(
        [_cell(r, "pmap-argmax", "test"), _cell(r, "pmap-argmax", "transfer")] * 3) + " |")
    return "\n".join(lines)


def calibration(results: list[ModelResult]) -> list[str]:
    """Where cont-pmap (no labels) lands between the atlas alone, random features and the label-trained
    feature models, per method and split (mean over GNN seeds)."""
    by = {r.feature_model: r for r in results}
    if "cont-pmap" not in by:
        return []
    c = by["cont-pmap"]
    lines = []
    for split in ("test", "transfer"):
        key = f"{split}_macro_f1"
        lines.append(f"- {split}: the atlas alone (pmap-argmax) {c.mean('pmap-argmax', key):.3f}; "
                     + "; ".join(f"{m}: " + ", ".join(f"{name} {by[name].mean(m, key):.3f}" for name in POSTER_ORDER
                                                      if name in by) for m in ("linear", "gnn", "gnn+")))
        for m in ("linear", "gnn", "gnn+"):
            low = by["random-init"].mean(m, key) if "random-init" in by else None
            parts = []
            for name in ("sup", "cont-sup"):
                if name in by and low is not None:
                    top = by[name].mean(m, key)
                    if top - low > 1e-9:
                        share = (c.mean(m, key) - low) / (top - low)
                        parts.append(f"{share:.0%} of the way from random-init ({low:.3f}) to {name} ({top:.3f})")
                    else:  # a share of a gap that is not there would read as "beyond the labels"
                        parts.append(f"{c.mean(m, key) - top:+.3f} against {name} ({top:.3f}), which is not above "
                                     f"random-init ({low:.3f}): no scale between them")
            if parts:
                lines.append(f"  - {m}, {split}: cont-pmap {c.mean(m, key):.3f} is " + "; ".join(parts))
    return lines


def _loss_curves(models_dir: Path, results: list[ModelResult], out: Path) -> str | None:
    """Each trained encoder's training loss by step (from its metrics.csv)."""
    import csv

    curves = {}
    for r in results:
        path = Path(models_dir) / r.model_version / "metrics.csv"
        if path.is_file():
            rows = list(csv.DictReader(open(path)))
            curves[f"{r.feature_model} ({r.model_version})"] = ([int(x["step"]) for x in rows], [float(x["loss"]) for x in rows])
    if not curves:
        return None
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.5), squeeze=False)
    for ax, (name, (steps, loss)) in zip(axes[0], curves.items()):
        ax.plot(steps, loss, lw=0.6, alpha=0.5)
        k = max(1, len(loss) // 20)
        ax.plot(steps[k - 1:], np.convolve(loss, np.ones(k) / k, mode="valid"), lw=1.5)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
    return _saved(fig, out, "encoder_loss.png")


def _saved(fig, out: Path, name: str, dpi: int = 90) -> str:
    """The figure written to out/name (and closed); the name, for the report's link."""
    fig.tight_layout()
    fig.savefig(out / name, dpi=dpi)
    plt.close(fig)
    return name


def _busiest_section(gs, sel: np.ndarray) -> tuple[str, int, np.ndarray]:
    """The (brain, section) with most nodes under `sel`, and the mask of all that section's nodes."""
    keys, counts = np.unique(gs.section_key[sel], return_counts=True)
    brain, sid = keys[counts.argmax()].rsplit("/", 1)
    return brain, int(sid), (gs.brain == brain) & (gs.section == int(sid))


def _colours(n: int) -> np.ndarray:
    return plt.get_cmap("hsv")(np.random.default_rng(0).permutation(n) / max(n, 1))


def _thumbnail(uri: str, max_px: int = 1200) -> tuple[np.ndarray, float]:
    info = read_info(uri)
    level = finest_level_within(info.level_shapes, max_px)
    with LevelReader(uri, level) as r:
        img = r.window(0, 0, *r.shape)
    return img, info.width / info.level_shapes[level][1]


def _section_maps(r: ModelResult, sections: dict, n_areas: int, out: Path) -> list[str]:
    """Per split, the annotated section with most nodes: truth vs GNN+ vs pmap-argmax over its thumbnail."""
    gs, files, colours = r.graphs, [], _colours(n_areas)
    for split in ("test", "transfer"):
        sel = (gs.split == split) & (gs.label >= 0)
        if not sel.any():
            continue
        brain, sid, on = _busiest_section(gs, sel)
        img, scale = _thumbnail(sections[(brain, sid)]["image_uri"])
        fig, axes = plt.subplots(1, 3, figsize=(15, 5.5))
        for ax, (title, values) in zip(axes, [("truth", gs.label), ("GNN+", r.predicted["gnn+"]),
                                              ("pmap-argmax", r.predicted["pmap-argmax"])]):
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            v = values[on]
            ok = v >= 0
            ax.scatter(gs.x[on][ok] / scale, gs.y[on][ok] / scale, c=colours[v[ok]], s=6)
            ax.set_title(f"{title}: {brain} section {sid} ({split})")
            ax.axis("off")
        files.append(_saved(fig, out, f"map_{split}_{r.model_version}.png"))
    return files


def _confusion(r: ModelResult, names: list[str], out: Path) -> str:
    gs = r.graphs
    sel = (gs.label >= 0) & np.isin(gs.split, ["test", "transfer"])
    labels = np.unique(gs.label[sel])
    cm = confusion_matrix(gs.label[sel], r.predicted["gnn+"][sel], labels=labels).astype(float)
    cm /= np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(12, 11))
    ax.imshow(cm, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), [names[i] for i in labels], rotation=90, fontsize=5)
    ax.set_yticks(range(len(labels)), [names[i] for i in labels], fontsize=5)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"GNN+ on {r.model_version}, test + transfer nodes (rows normalised)")
    return _saved(fig, out, f"confusion_{r.model_version}.png", dpi=110)


def _embedding(results: list[ModelResult], n_areas: int, points: int, out: Path) -> str:
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 5.5), squeeze=False)
    colours = _colours(n_areas)
    for ax, r in zip(axes[0], results):
        gs = r.graphs
        idx = np.flatnonzero(gs.label >= 0)
        idx = np.random.default_rng(0).choice(idx, min(points, len(idx)), replace=False)
        z = TSNE(2, init="pca", random_state=0, perplexity=min(30, max(2, len(idx) // 4))).fit_transform(
            reduced(gs.features[idx]))
        ax.scatter(z[:, 0], z[:, 1], c=colours[gs.label[idx]], s=4)
        ax.set_title(f"t-SNE of {r.model_version} node features (colour: true area)")
        ax.axis("off")
    return _saved(fig, out, "embedding_tsne.png")


def _cluster_map(r: ModelResult, sections: dict, out: Path) -> str | None:
    if not r.clusters:
        return None
    gs, best = r.graphs, max(r.clusters, key=lambda c: c["nmi"])
    sel = gs.label >= 0
    brain, sid, on = _busiest_section(gs, sel)
    img, scale = _thumbnail(sections[(brain, sid)]["image_uri"])
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(img, cmap="gray", vmin=0, vmax=255)
    ax.scatter(gs.x[on] / scale, gs.y[on] / scale, c=_colours(best["k"])[best["assign"][on]], s=6)
    ax.set_title(f"k-means k={best['k']} on {r.model_version}: {brain} section {sid}")
    ax.axis("off")
    return _saved(fig, out, f"clusters_{r.model_version}.png")


def gain_lines(results: list[ModelResult]) -> list[str]:
    """One line per feature model: GNN+ minus pmap-argmax, its paired 95 % interval, per split."""
    out = []
    for r in results:
        parts = []
        for split, (lo, hi) in r.gain_over_atlas.items():
            d = r.mean("gnn+", f"{split}_macro_f1") - r.mean("pmap-argmax", f"{split}_macro_f1")
            parts.append(f"{split} {d:+.3f} " + ("(one section: no interval)" if np.isnan(lo) else f"[{lo:+.3f}, {hi:+.3f}]"))
        out.append(f"- {r.feature_model} (`{r.model_version}`): " + "; ".join(parts))
    return out


def write_report(out: Path, results: list[ModelResult], area_names: list[str], sections: dict, points: int,
                 models_dir: Path) -> Path:
    """Writes `out/report.md` and its figures; returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    n_areas = len(area_names)
    results = ordered(results)
    first = next((r for r in results if r.feature_model == "cont-pmap"), results[0])
    seeds = len(first.seed_scores["gnn+"])
    lines = ["# cytolake evaluation", "",
             "Macro-F1 over the areas present in each split's annotated nodes (`test`: held-out sections of the "
             "training brains; `transfer`: the unseen brain), the poster's comparison: feature models `sup` "
             "(cross-entropy on labels), `cont-sup` (the contrastive loss on one-hot labels), `cont-pmap` (the "
             "contrastive loss on pmap vectors, no labels) and `random-init`; methods linear probe, GNN "
             f"(GAT on the features) and GNN+ (plus pmap, coordinates and the pmap prior). GNN columns: mean ± sd "
             f"over {seeds} GNN seeds.", "",
             comparison_table(results), "",
             f"Classes scored: {first.graphs.classes.description}.", "",
             "## GNN+ against the atlas alone", "",
             "Paired bootstrap over whole sections (1,000 resamples of the split's annotated sections within each brain, "
             "each with all its nodes): 95 % interval of GNN+'s macro-F1 (mean over the GNN seeds) minus pmap-argmax's. "
             "Nodes of one section are not independent, so sections are what is resampled; with a handful of sections "
             "the interval is still too narrow, and the transfer interval covers the sections of one brain, not the "
             "variation between brains.", "", *gain_lines(results), "",
             "## Calibration: where the label-free features land", "", *calibration(results), "",
             "Nodes scored: " + ", ".join(f"{s} {int(first.seed_scores['gnn+'][0][f'{s}_nodes'])}"
                                          for s in ("train", "validation", "test", "transfer")),
             "", "GNN runs: " + ", ".join(f"`{rid}`" for r in results for ids in r.runs.values() for rid in ids), ""]
    curves = _loss_curves(models_dir, results, out)
    if curves:
        lines += ["## Encoder training", "", f"![encoder loss]({curves})", ""]
    lines += ["## Predicted areas over section thumbnails", ""]
    lines += [f"![{f}]({f})" for f in _section_maps(first, sections, n_areas, out)]
    lines += ["", "## Confusion matrix", "", f"![confusion]({_confusion(first, area_names, out)})", ""]
    lines += ["## Embedding", "", f"![embedding]({_embedding([first, results[-1]] if len(results) > 1 else results, n_areas, points, out)})", ""]
    lines += ["## Clustering of the features (data-driven parcellation)", "",
              "| model | k | ARI | NMI |", "|---|---|---|---|"]
    for r in results:
        lines += [f"| {r.model_version} | {c['k']} | {c['ari']:.3f} | {c['nmi']:.3f} |" for c in r.clusters]
    cm = _cluster_map(first, sections, out)
    if cm:
        lines += ["", f"![clusters]({cm})"]
    gs = first.graphs
    lines += ["", f"## Per-area F1 on test + transfer nodes ({first.model_version})", "",
              "| area | nodes | " + " | ".join(METHODS) + " |", "|---" * (2 + len(METHODS)) + "|"]
    sel = (gs.label >= 0) & np.isin(gs.split, ["test", "transfer"])
    f1s = {m: per_area_f1(gs.label[sel], first.predicted[m][sel]) for m in METHODS}
    for a in sorted(f1s["gnn+"]):
        lines.append(f"| {area_names[a]} | {int((gs.label[sel] == a).sum())} | "
                     + " | ".join(f"{f1s[m][a]:.2f}" for m in METHODS) + " |")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "scores.json").write_text(json.dumps(scores_summary(results), indent=1))
    return path


def scores_summary(results: list[ModelResult]) -> dict:
    """Macro-F1 per feature model, method and split: one value per GNN seed (what benchmarks/science/worlds.py reads),
    and the paired interval of GNN+ minus pmap-argmax per split."""
    return {r.feature_model: {"model_version": r.model_version, "classes": r.graphs.classes.description,
                              "gnn+_minus_atlas_95": {k: [None if np.isnan(x) else x for x in v] for k, v in r.gain_over_atlas.items()},
                              **{m: {split: [s[f"{split}_macro_f1"] for s in r.seed_scores[m]] for split in ("test", "transfer")}
                                 for m in METHODS}} for r in results}


RUN_INFO = "run.json"  # an evaluation report's metadata: its run id and fingerprint, when, from which config


def report_folder(reports: Path, run: str, day: _dt.date) -> Path:
    """The report folder of evaluation `run` (`eval-<fingerprint>`): `eval-<YYYYMMDD>-<fingerprint>`, dated by the
    day it is first written so that a person can tell reports apart, and found again by its fingerprint so
    that a rerun of the same evaluation, on any day, writes the same folder (also one named by the bare run
    id, as reports were before)."""
    fingerprint = run.removeprefix("eval-")
    if Path(reports).is_dir():
        for p in sorted(Path(reports).glob(f"eval-*{fingerprint}")):
            if p.is_dir() and (p.name == run or p.name.endswith(f"-{fingerprint}")):
                return p
    return Path(reports) / f"eval-{day:%Y%m%d}-{fingerprint}"


def write_run_info(folder: Path, run: str, config: Path | None, models: list[str], now: _dt.datetime) -> Path:
    """`folder/run.json`: the run id (the `metrics` table's `run_id`), its fingerprint, the config file and the
    feature models; `created` is kept from an earlier write of the same run, `written` is `now`."""
    path = folder / RUN_INFO
    old = json.loads(path.read_text()) if path.is_file() else {}
    info = {"run_id": run, "fingerprint": run.removeprefix("eval-"), "created": old.get("created", now.isoformat()),
            "written": now.isoformat(), "config": str(config) if config else None, "models": models}
    path.write_text(json.dumps(info, indent=1))
    return path
