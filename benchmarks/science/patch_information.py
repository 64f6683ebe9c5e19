"""How much area information the demo's patches carry without any learning: 30 intensity statistics per
patch (percentiles, a 16-bin histogram, gradient energy, the share of dark pixels) and a logistic
regression, trained on the labelled `train` patches and scored by macro-F1 on `test` and `transfer`,
hemispheres merged (left and right of an area share a cytoarchitecture). A reference for the learned
encoders' linear probes (`jobs/probe.py`, the report's linear column).

    .venv/bin/python -m benchmarks.science.patch_information --config conf/local.yaml   # after make demo
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler

from cytolake.config import load_config
from cytolake.lake import Lake


def statistics(p: np.ndarray) -> np.ndarray:
    q = np.percentile(p, [5, 10, 25, 50, 75, 90, 95])
    hist = np.histogram(p, bins=16, range=(0, 256))[0] / p.size
    gy, gx = np.gradient(p)
    h, w = p.shape
    centre = p[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
    return np.r_[q, hist, p.std(), centre.mean(), centre.std(), np.abs(gx).mean(), np.abs(gy).mean(), (p < 120).mean()]


def depth_profile(p: np.ndarray, bins: int = 24, turn: bool = True) -> np.ndarray:
    """Statistics of the patch read along its own depth axis, found without any label: the direction of
    strongest intensity change (the structure tensor of the smoothed patch: layers are bands parallel to
    the cortical surface) turned to the vertical, grey levels averaged along the bands over the central
    half, the profile flipped so its brighter half comes first (the side is otherwise unknown). Returns the
    profile in `bins` bins and the magnitudes of its first 12 Fourier coefficients (shift-free). With
    turn=False the patch is taken as already turned (its rows run down the depth)."""
    from scipy import ndimage

    r = p
    if turn:
        g = ndimage.gaussian_filter(p, 3.0)
        gy, gx = np.gradient(g)
        j = np.array([[np.sum(gx * gx), np.sum(gx * gy)], [np.sum(gx * gy), np.sum(gy * gy)]])
        vx, vy = np.linalg.eigh(j)[1][:, -1]
        angle = np.degrees(np.arctan2(vx, vy))  # rotating by it brings the depth axis to the rows
        r = ndimage.rotate(p, -angle, reshape=False, order=1, mode="nearest")
    h, w = r.shape
    prof = r[:, w // 4: 3 * w // 4].mean(axis=1)
    if prof[: h // 2].mean() < prof[h // 2:].mean():
        prof = prof[::-1]
    binned = prof[: h - h % bins].reshape(bins, -1).mean(axis=1)
    return np.r_[binned, np.abs(np.fft.rfft(prof - prof.mean()))[1:13]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="conf/local.yaml")
    a = ap.parse_args(argv)
    lake = Lake(load_config(a.config).paths.lake)
    areas = lake.read("areas", ["area_index", "name"]).to_pylist()
    merged = {r["area_index"]: r["name"] for r in areas}  # area name without hemisphere
    t = lake.read("patches", ["label", "image", "split", "height", "width"])
    t = t.filter(t["label"].is_valid())
    h, w = t["height"][0].as_py(), t["width"][0].as_py()
    x = np.stack([statistics(np.frombuffer(v.as_py(), np.uint8).reshape(h, w).astype(np.float32)) for v in t["image"]])
    names = np.array([merged[v] for v in t["label"].to_pylist()])
    split = np.array(t["split"].to_pylist())
    train = split == "train"
    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(x[train]), names[train])
    for s in ("test", "transfer"):
        m = split == s
        pred = clf.predict(scaler.transform(x[m]))
        f1 = f1_score(names[m], pred, labels=np.unique(names[m]), average="macro", zero_division=0)
        print(f"{s}: {m.sum()} patches, {len(np.unique(names[m]))} areas (hemispheres merged): "
              f"macro-F1 {f1:.3f}, accuracy {(pred == names[m]).mean():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
