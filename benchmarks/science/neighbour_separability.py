"""Can the synthetic world's images tell apart the areas that the atlas confuses? An upper bound from the
laminar signatures alone (no lake, no learning of images).

The atlas alone (pmap-argmax) errs where two maps overlap; GNN+ can beat it only by telling those two areas
apart from the patch. This script takes every pair of areas that the Juelich maps confuse (voxels whose
largest probability is one area and whose second largest, at least half of it, is the other), weighted by
how many voxels they share, and asks how well an ideal observer could separate them from the expected
depth profile of cell-body staining, given only how each area varies between brains:

- a profile is the expected stained area fraction per pixel down the depth (neurons by lamina and band from
  `synth/texture.laminar_cells`, glia; `texture.cell_area_fraction` without its Poisson draw), at the tiling's spacing, from the pial
  surface 4.5 mm down (cortex, then white matter), divided by its mean over the cortex (the section's stain
  scales the whole profile);
- `--brains` brains per area drawn as the synthetic world draws them (`cytoarchitecture.brain_signature`:
  layer widths, densities, cortical thickness, soma size);
- a shrinkage LDA per pair, 5-fold cross-validated accuracy on those brains (0.5: no better than a coin);
- the same for a rendered observer: for each of those brains one patch of `tiling.patch_px` px rendered as
  the world renders sections (`texture.render_section`: Poisson cell counts, soma blur, glia, neuropil,
  Beer-Lambert staining, a section's stain, gain, offset and scanner noise drawn as `section_style` draws
  them, no artifacts), of straight cortex with the pial surface at the top, and its grey levels averaged
  along the cortex (one value per depth row): what a patch shows of the profile, if the observer knew the
  depth axis;
- the same rendered observer with the demo's sample design: two brains per area, `--per-brain` patches of
  each, trained on one brain and scored on the other (and the reverse): what learning from one brain's
  variant of each signature costs.

Both are upper bounds: the cortex runs straight along the patch, the depth axis is known, and no cutting
angle, artifact or neighbouring area enters it; the rendered patches of the demo have all of these. Pairs the
bounds cannot separate, no encoder can; pairs they do separate, an encoder could learn to.

With `--patches` (after `make demo`), the same pairs on the demo lake's own patches: the labelled patches of
the `train` split only (no test or transfer patch is read), an area pair where each area has >= 20 patches in
each training brain, leave-one-brain-out balanced accuracy of the same LDA on the 30 intensity statistics,
on the label-free depth profile of `patch_information.py`, and on the same profile read along the depth axis
that the world's truth gives (an oracle: the direction across the cortex ribbon of the section's truth label
image around the patch centre, the patch resampled from the section turned to it; and the same moved to the
middle of the ribbon; and that profile with its mean and scale removed per patch): how much of what the
patches lose is the unknown orientation, the patch's place in the ribbon, and the section's stain. Last, the
oracle that knows each pixel's cortical depth (`true_depth_*`: the section's anatomy redrawn from the brain's
seeds): what the rendered pixels hold at all, before any geometry has to be found. Every feature is also
scored across sections of the same brains (`*_across_sections`, sections held out whole, the test split's
case) besides across brains (the transfer brain's case).

    .venv/bin/python -m benchmarks.science.neighbour_separability [--config conf/local.yaml] [--brains 200] [--patches]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import cross_val_score

from cytolake.atlas.pmaps import Atlas
from cytolake.config import load_config
from cytolake.synth import cytoarchitecture as cyto
from cytolake.synth.cytoarchitecture import GLIA_PER_MM3, GLIA_UM, WHITE_GLIA_PER_MM3, Signature
from cytolake.synth.texture import laminar_cells, render_section, section_style, signature_tables
from cytolake.tiling.geometry import window_origin

DEPTH_MM = 4.5


def profile(sig: Signature, spacing_um: float, section_um: float) -> np.ndarray:
    """Expected stained area fraction per pixel from the pial surface down, divided by its cortex mean."""
    px_um2, voxel_mm3 = spacing_um**2, spacing_um**2 * section_um * 1e-9
    depth_mm = (np.arange(int(DEPTH_MM * 1000 / spacing_um)) + 0.5) * spacing_um / 1000
    d = depth_mm / sig.thickness_mm
    cortex = d < 1
    _, density, soma = laminar_cells(signature_tables([sig]), np.zeros(len(d), np.int64), d.clip(0, 1))
    frac = density * voxel_mm3 * np.pi / 4 * soma.astype(np.float64) ** 2 / px_um2
    glia = np.where(cortex, GLIA_PER_MM3, WHITE_GLIA_PER_MM3) * voxel_mm3 * np.pi / 4 * GLIA_UM**2 / px_um2
    frac = np.where(cortex, frac, 0.0) + glia
    return frac / frac[cortex].mean()


def rendered_profile(sig: Signature, spacing_um: float, section_um: float, px: int, rng: np.random.Generator) -> np.ndarray:
    """A rendered px x px patch of straight cortex (pial surface at row 0) averaged along the cortex."""
    depth_mm = (np.arange(px) + 0.5) * spacing_um / 1000
    d = np.repeat((depth_mm / sig.thickness_mm)[:, None], px, axis=1)
    cortex, white = d < 1, d >= 1
    style = section_style(rng, float(np.exp(rng.normal(0, 0.1))), rng.uniform(0.9, 1.1), rng.uniform(-5, 5), 0.0)
    img = render_section(signature_tables([sig]), np.zeros(d.shape, np.int64), np.where(cortex, d, 0).astype(np.float32),
                         cortex, white, spacing_um, section_um, style, rng)
    return img.mean(axis=1)


def across_two_brains(pa: list[np.ndarray], pb: list[np.ndarray]) -> float:
    """Balanced accuracy of the LDA trained on one brain's patches of the two areas (pa[0] vs pb[0]) and
    scored on the other brain's (pa[1] vs pb[1]), and the reverse, averaged: the demo's sample design."""
    from sklearn.metrics import balanced_accuracy_score

    scores = []
    for fit, score in ((0, 1), (1, 0)):
        model = lda().fit(np.vstack([pa[fit], pb[fit]]), np.r_[np.zeros(len(pa[fit])), np.ones(len(pb[fit]))])
        y = np.r_[np.zeros(len(pa[score])), np.ones(len(pb[score]))]
        scores.append(balanced_accuracy_score(y, model.predict(np.vstack([pa[score], pb[score]]))))
    return float(np.mean(scores))


def confused_pairs(atlas: Atlas) -> Counter:
    """(name a, name b) -> voxels where a has the largest probability and b the second, at least half of it
    (hemispheres merged: left and right of an area share a signature)."""
    top = np.zeros(atlas.shape, np.float32)
    second = np.zeros(atlas.shape, np.float32)
    i_top = np.full(atlas.shape, -1, np.int32)
    i_second = np.full(atlas.shape, -1, np.int32)
    for k, a in enumerate(atlas.areas):
        p = atlas.area_map(a)
        new_top = p > top
        new_second = ~new_top & (p > second)
        i_second = np.where(new_top, i_top, np.where(new_second, k, i_second))
        second = np.where(new_top, top, np.where(new_second, p, second))
        i_top, top = np.where(new_top, k, i_top), np.where(new_top, p, top)
    hit = (i_second >= 0) & (second >= 0.5 * top) & (top > 0)
    names = [a.name for a in atlas.areas]
    pairs = Counter()
    for a, b in zip(i_top[hit].tolist(), i_second[hit].tolist()):
        na, nb = names[a], names[b]
        if na != nb:
            pairs[tuple(sorted((na, nb)))] += 1
    return pairs


def lda() -> LinearDiscriminantAnalysis:
    """The observer of every comparison here: a linear discriminant with Ledoit-Wolf shrinkage."""
    return LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")


def pair_accuracy(pa: np.ndarray, pb: np.ndarray, seed: int) -> float:
    x = np.vstack([pa, pb])
    y = np.r_[np.zeros(len(pa)), np.ones(len(pb))]
    order = np.random.default_rng(seed).permutation(len(y))
    return float(cross_val_score(lda(), x[order], y[order], cv=5).mean())


def truth_axis_profiles(cfg, brains, sections, xs, ys, px: int) -> tuple[np.ndarray, np.ndarray]:
    """For patch centres (level-0 pixels of the landing's section images), the `depth_profile` features of a
    px x px patch resampled from the section along the local direction across the cortex ribbon of the
    section's truth label image (structure tensor of the smoothed cortex mask around it), and of the same
    patch moved along that direction to the middle of the ribbon (the point farthest from its edges within
    half a patch). Each section's image and labels are read once for both."""
    import tifffile
    from scipy import ndimage

    from benchmarks.science.patch_information import depth_profile

    along_axis, centred = np.zeros((len(xs), 36)), np.zeros((len(xs), 36))
    half = np.arange(px) - px / 2 + 0.5
    u, v = np.meshgrid(half, half, indexing="ij")  # u: depth (rows), v: along the ribbon
    for key in sorted(set(zip(brains, sections))):
        folder = Path(cfg.paths.landing) / key[0]
        image = tifffile.imread(folder / "images" / f"section_{key[1]:04d}.tif").astype(np.float32)
        labels = tifffile.imread(folder / "truth" / f"section_{key[1]:04d}_labels.tif")
        f = image.shape[0] / labels.shape[0]
        mask = ndimage.gaussian_filter((labels > 0).astype(np.float32), 1.5)
        inside = ndimage.distance_transform_edt(labels > 0)
        gy, gx = np.gradient(mask)
        jxx, jxy, jyy = (ndimage.uniform_filter(v, 2 * px / f) for v in (gx * gx, gx * gy, gy * gy))
        for i in np.flatnonzero((brains == key[0]) & (sections == key[1])):
            r, c = int(ys[i] / f), int(xs[i] / f)
            j = np.array([[jxx[r, c], jxy[r, c]], [jxy[r, c], jyy[r, c]]])
            nx, ny = np.linalg.eigh(j)[1][:, -1]  # across the ribbon
            steps = half[:: max(1, int(f) // 2)]
            d = ndimage.map_coordinates(inside, [(ys[i] + steps * ny) / f, (xs[i] + steps * nx) / f], order=1)
            for out, shift in ((along_axis, 0.0), (centred, steps[d.argmax()])):
                y0, x0 = ys[i] + shift * ny, xs[i] + shift * nx
                patch = ndimage.map_coordinates(image, [y0 + u * ny + v * nx, x0 + u * nx - v * ny], order=1,
                                                mode="nearest")
                out[i] = depth_profile(patch, turn=False)
    return along_axis, centred


class TrueDepth(NamedTuple):
    """`true_depth_profiles`' answer: the profiles by kind, and what the area-isolated patches are painted with."""
    profiles: dict[str, np.ndarray]
    neighbour_cortex: np.ndarray
    fill: np.ndarray


def true_depth_profiles(cfg, brains, sections, xs, ys, px: int, bins: int = 24) -> TrueDepth:
    """For patch centres (level-0 pixels of the landing's section images, at the tiling's spacing), the
    grey levels of the px x px window read against the world's own cortical depth of each pixel (redrawn
    from the brain's seeds with `synth.brains.brain_plan` and `section_truth`: the anatomy the section was
    rendered from): the mean grey level in `bins` depth bins from the pial surface (0) to white matter (1),
    a bin without cortex filled from its neighbours, with the window's cortex fraction and white-matter
    mean. `own_area` uses only the cortex of the area under the window's centre (none where the centre pixel
is not cortex: the profile is then the window's mean grey, its fraction 0), `centre_<r>px` only the
    cortex within r px of the centre (no area label: what a narrower field would see). Nothing is inferred from
    the image: whatever these profiles cannot separate, the rendering lost (cell noise, few pixels per
    layer, a ribbon thinner than its signature), and what they separate but the patch features do not is
    lost to the geometry (curvature, orientation, the window's place in the ribbon).

    Beside the profiles, `neighbour_cortex` (n, px, px) bool, aligned with the patch: the window's cortex of
    any area but the centre's (all of its cortex where the centre is not cortex), and `fill` (n,): the
    window's white-matter mean grey, to paint that cortex over with (validation_science.py's area-isolated
    patches)."""
    import tifffile

    from cytolake.synth.brains import atlas_support, brain_plan, load_anatomy, section_shape, section_truth

    synth = cfg.synth
    assert abs(synth.spacing_um - cfg.tiling.spacing_um) < 1e-6, "the oracle reads level 0: tiling at the section spacing"
    atlas = Atlas(cfg.atlas)
    support, anatomy = atlas_support(atlas), load_anatomy()
    radii = (16, 32)  # px: cortex within this distance of the centre (0.64 and 1.28 mm at 40 um/px)
    out = {k: np.zeros((len(xs), bins + 2)) for k in ("all_cortex", "own_area", *(f"centre_{r}px" for r in radii))}
    neighbour_cortex, fill = np.zeros((len(xs), px, px), bool), np.zeros(len(xs))
    edges = np.linspace(0, 1, bins + 1)
    for brain_id in sorted(set(brains)):
        plan = brain_plan(int(brain_id[1:]) - 1, synth, atlas, support)
        thickness = signature_tables(plan.signatures)["thickness_mm"]
        for job in plan.jobs:
            rows = np.flatnonzero((brains == brain_id) & (sections == job["section_id"]))
            if not len(rows):
                continue
            truth = section_truth(plan.model, anatomy, job["affine"], section_shape(synth), synth.spacing_um, thickness)
            image = tifffile.imread(Path(cfg.paths.landing) / brain_id / job["image_path"]).astype(np.float32)
            assert image.shape == truth["depth"].shape, (brain_id, job["section_id"])
            r0s, c0s = window_origin(xs[rows], ys[rows], 0, px)
            for i, r0, c0 in zip(rows, r0s, c0s):
                win = np.s_[max(r0, 0): r0 + px, max(c0, 0): c0 + px]
                g, d, cx, a = image[win], truth["depth"][win], truth["cortex"][win], truth["area"][win]
                centre = truth["area"][int(ys[i]), int(xs[i])]
                white = g[truth["white"][win]]
                # distance to the centre from each pixel's section coordinates (right also where the window is clipped)
                win_rows = np.arange(max(r0, 0), max(r0, 0) + cx.shape[0])
                win_cols = np.arange(max(c0, 0), max(c0, 0) + cx.shape[1])
                dist = np.hypot(*np.meshgrid(win_rows - int(ys[i]), win_cols - int(xs[i]), indexing="ij"))
                near = {f"centre_{r}px": cx & (dist <= r) for r in radii}
                dr, dc = max(r0, 0) - r0, max(c0, 0) - c0  # where the (clipped) window lies in the patch
                neighbour_cortex[i, dr: dr + cx.shape[0], dc: dc + cx.shape[1]] = cx & (a != centre)
                fill[i] = white.mean() if white.size else g.mean()
                for kind, m in (("all_cortex", cx), ("own_area", cx & (a == centre)), *near.items()):
                    b = np.digitize(d[m], edges[1:-1])
                    n = np.bincount(b, minlength=bins)
                    prof = np.bincount(b, weights=g[m], minlength=bins) / np.maximum(n, 1)
                    have = n > 0
                    prof = np.interp(np.arange(bins), np.flatnonzero(have), prof[have]) if have.any() else np.full(bins, g.mean())
                    out[kind][i] = np.r_[prof, m.mean(), white.mean() if white.size else g.mean()]
    return TrueDepth(out, neighbour_cortex, fill)


def lake_pairs(cfg, rows: list[dict]) -> list[dict]:
    """Leave-one-brain-out balanced accuracy of the pairs in `rows` on the demo lake's labelled train patches."""
    import pyarrow.compute as pc
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    from cytolake.lake import Lake

    from benchmarks.science.patch_information import depth_profile, statistics

    lake = Lake(cfg.paths.lake)
    names_of = {r["area_index"]: r["name"] for r in lake.read("areas", ["area_index", "name"]).to_pylist()}
    t = lake.read("patches", ["brain_id", "section_id", "x", "y", "label", "split", "height", "width", "image"])
    t = t.filter(pc.and_(t["label"].is_valid(), pc.equal(t["split"], "train")))
    h, w = t["height"][0].as_py(), t["width"][0].as_py()
    images = np.stack([np.frombuffer(v, np.uint8) for v in t["image"].to_pylist()]).reshape(-1, h, w).astype(np.float32)
    names = np.array([names_of[v] for v in t["label"].to_pylist()])
    brain = np.array(t["brain_id"].to_pylist())
    section = np.char.add(np.char.add(brain, "/"), np.array(t["section_id"].to_pylist()).astype(str))
    along_axis, c = truth_axis_profiles(cfg, brain, np.array(t["section_id"].to_pylist()),
                                        np.array(t["x"].to_pylist(), float), np.array(t["y"].to_pylist(), float), h)
    features = {"statistics": np.stack([statistics(q) for q in images]),
                "depth_profile": np.stack([depth_profile(q) for q in images]),
                "depth_profile_truth_axis": along_axis, "depth_profile_truth_axis_centred": c}
    true_depth = true_depth_profiles(cfg, brain, np.array(t["section_id"].to_pylist()),
                                     np.array(t["x"].to_pylist(), float), np.array(t["y"].to_pylist(), float), h)
    features.update({f"true_depth_{k}": v for k, v in true_depth.profiles.items()})
    sd = c[:, :24].std(axis=1, keepdims=True) + 1e-6  # the section's stain and gain scale the whole profile
    features["depth_profile_truth_axis_centred_normalised"] = np.c_[(c[:, :24] - c[:, :24].mean(axis=1, keepdims=True)) / sd,
                                                                    c[:, 24:] / sd]
    out = []
    for r in rows:
        m = np.isin(names, [r["a"], r["b"]])
        if any(((names == n) & (brain == b)).sum() < 20 for n in (r["a"], r["b"]) for b in np.unique(brain)):
            continue
        res = {"a": r["a"], "b": r["b"], "rendered_accuracy": r["rendered_accuracy"],
               "rendered_two_brains_accuracy": r["rendered_two_brains_accuracy"]}
        for kind, x in features.items():
            # across brains (train on one, score the other: the transfer brain's case) and across sections
            # of the same brains (sections held out whole: the test split's case)
            folds = GroupKFold(min(4, len(np.unique(section[m]))))  # fewer where a pair lies on fewer sections
            for suffix, groups, cv in (("", brain[m], LeaveOneGroupOut()), ("_across_sections", section[m], folds)):
                res[kind + suffix] = round(float(cross_val_score(lda(), x[m], names[m] == r["a"], groups=groups, cv=cv,
                                                                 scoring="balanced_accuracy").mean()), 3)
        out.append(res)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="conf/local.yaml")
    p.add_argument("--brains", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--per-brain", type=int, default=40,
                   help="patches per area and brain of the two-brain observer (the demo: ~40 labelled train patches)")
    p.add_argument("--patches", action="store_true", help="also the pairs on the demo lake's labelled train patches")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    spacing, section = cfg.tiling.spacing_um, cfg.synth.section_thickness_um
    pairs = confused_pairs(Atlas(cfg.atlas))
    rng = np.random.default_rng(a.seed)
    names = sorted({n for pair in pairs for n in pair})
    ideal, rendered, two = {}, {}, {}
    two_rng = np.random.default_rng([a.seed, 1])  # its own stream: the other observers' draws stay as they were
    for n in names:
        brains = [cyto.brain_signature(cyto.signature(n), rng, float(np.exp(rng.normal(0, 0.05)))) for _ in range(a.brains)]
        ideal[n] = np.stack([profile(b, spacing, section) for b in brains])
        rendered[n] = np.stack([rendered_profile(b, spacing, section, cfg.tiling.patch_px, rng) for b in brains])
        pair_of_brains = [cyto.brain_signature(cyto.signature(n), two_rng, float(np.exp(two_rng.normal(0, 0.05))))
                          for _ in range(2)]
        two[n] = [np.stack([rendered_profile(b, spacing, section, cfg.tiling.patch_px, two_rng) for _ in range(a.per_brain)])
                  for b in pair_of_brains]
    rows = []
    for (na, nb), voxels in pairs.most_common():
        same = cyto.signature(na) == cyto.signature(nb)
        rows.append({"a": na, "b": nb, "voxels": voxels, "same_family": cyto.family(na) == cyto.family(nb),
                     "same_signature": same,
                     "ideal_accuracy": 0.5 if same else round(pair_accuracy(ideal[na], ideal[nb], a.seed), 3),
                     "rendered_accuracy": 0.5 if same else round(pair_accuracy(rendered[na], rendered[nb], a.seed), 3),
                     "rendered_two_brains_accuracy": 0.5 if same else round(across_two_brains(two[na], two[nb]), 3)})
    w = np.array([r["voxels"] for r in rows], float)
    summary = {"spacing_um": spacing, "patch_px": cfg.tiling.patch_px, "brains_per_area": a.brains, "two_brains_patches_per_brain": a.per_brain,
               "confused_pairs": len(rows), "confused_voxels": int(w.sum()),
               "voxel_share_same_signature": round(float(w[[r["same_signature"] for r in rows]].sum() / w.sum()), 3)}
    for kind in ("ideal", "rendered", "rendered_two_brains"):
        acc = np.array([r[f"{kind}_accuracy"] for r in rows])
        summary[kind] = {"voxel_weighted_mean_accuracy": round(float((w * acc).sum() / w.sum()), 3),
                         **{f"voxel_share_accuracy_>=_{t}": round(float(w[acc >= t].sum() / w.sum()), 3)
                            for t in (0.6, 0.75, 0.9, 0.99)}}
    result = {"summary": summary, "most_confused": rows[:a.top]}
    if a.patches:
        result["demo_patches"] = lake_pairs(cfg, rows)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
