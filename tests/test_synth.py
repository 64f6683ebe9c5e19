"""The synthetic brains: real formats, consistent geometry, and texture that carries the area."""

import json
import subprocess
import sys
from collections import Counter

import nibabel as nib
import numpy as np
import pytest
import tifffile
from scipy.stats import binomtest
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import balanced_accuracy_score

from cytolake.atlas.pmaps import Atlas
from cytolake.config import AtlasSettings, load_config
from cytolake.io.images import read_info
from cytolake.io.manifest import read_manifest
from cytolake.synth import cytoarchitecture as cyto
from cytolake.synth.cytoarchitecture import family

from conftest import ROOT, quiet

CFG = load_config(ROOT / "conf" / "test.yaml")


def test_sections_are_tiled_pyramidal_bigtiffs_with_spacing(synth_landing):
    p = synth_landing / "B01" / "images" / "section_0001.tif"
    with tifffile.TiffFile(p) as tf:
        assert tf.is_bigtiff
        page = tf.series[0].levels[0].pages[0]
        assert page.is_tiled and page.tilewidth == CFG.synth.tile_px and page.dtype == np.uint8
        levels = tf.series[0].levels
        assert len(levels) >= 2 and levels[1].shape[0] == levels[0].shape[0] // 2
    info = read_info(p)
    assert info.spacing_um == CFG.synth.spacing_um and info.dtype == "uint8"
    img = tifffile.imread(p)
    assert img.mean() > 150  # bright background, dark cells


def test_manifest_affines_place_sections_on_their_planes(synth_landing):
    entries = read_manifest(synth_landing / "B02" / "manifest.csv", synth_landing)
    assert [e.section_id for e in entries] == [1, 2, 3] and all(e.error is None for e in entries)
    lo, hi = CFG.synth.y_range_mm
    gap = (hi - lo) / CFG.synth.sections_per_brain
    for e in entries:
        a = np.asarray(e.transform).reshape(4, 4)
        info = read_info(e.image)
        centre = np.array([(info.width - 1) / 2, (info.height - 1) / 2, 0, 1]) @ a.T
        normal = np.cross(a[:3, 0], a[:3, 1])
        tilt = np.degrees(np.arccos(abs(normal[1]) / np.linalg.norm(normal)))
        assert tilt < 4 * CFG.synth.cutting_angle_sd_deg  # coronal, up to the cutting angle
        assert lo - gap <= centre[1] <= hi + gap
        assert np.isclose(np.linalg.norm(a[:3, 0]), CFG.synth.spacing_um / 1000)  # mm per pixel
    annotated = [e for e in entries if e.annotation is not None]
    assert len(annotated) == round(CFG.synth.annotated_fraction * 3)
    assert all(e.annotation.is_file() for e in annotated)


def test_each_brain_has_its_own_parcellation(synth_landing):
    """Two brains drawn from the same maps agree where both have an area as often as two independent draws
    with the maps' frequencies do: at voxel x with probability sum_a q_a(x)^2 over (1 - q_none(x))^2."""
    from cytolake.synth.brains import area_frequencies, atlas_support

    a = nib.load(synth_landing / "B01" / "truth" / "parcellation.nii.gz").get_fdata()
    b = nib.load(synth_landing / "B02" / "truth" / "parcellation.nii.gz").get_fdata()
    both = (a > 0) & (b > 0)
    agree = (a[both] == b[both]).mean()
    ijk, areas = atlas_support(Atlas(CFG.atlas))
    total, squares = np.zeros(len(ijk)), np.zeros(len(ijk))
    for _, rows, p in areas:
        total[rows] += p
    for _, rows, p in areas:
        squares[rows] += area_frequencies(p, total[rows])[0] ** 2
    none = area_frequencies(np.zeros(len(ijk)), total)[1]
    expected = squares.sum() / ((1 - none) ** 2).sum()
    assert abs(agree - expected) < 0.05 and agree < 0.99, (agree, expected)


def test_over_many_brains_each_area_occurs_as_often_as_its_map_says():
    """Calibration of the world against the atlas: over 60 brains, the share of brains in which area a lies at
    voxel x matches the map's probability p_a(x) (normalised where the maps sum to more than 1), binned by
    probability. Drawn on 4,000 voxels of the demo's slab (MNI y -40..0) with every area's full map, so the
    frequencies are those `make_brain` gives the rendered brains.

    Tolerance: each bin's observed frequency is compared with its mean predicted probability within 4 of its
    standard errors, the standard error taken from the spread of the 60 brains' own bin frequencies (so the
    spatial correlation of the fields is accounted for), plus 0.01 for the spread of p within a bin. The
    world before this draw (argmax of p x exp(0.6 g)) put the 0.5-0.6 bin at about 0.8 and the 0.1-0.2 bin
    near 0.02: far outside."""
    import nibabel as nib

    from cytolake.synth.brains import area_frequencies, atlas_support, make_brain

    atlas = Atlas(CFG.atlas)
    ijk, areas = atlas_support(atlas)
    y = nib.affines.apply_affine(atlas.affine, ijk)[:, 1]
    rows = np.flatnonzero((y >= -40) & (y <= 0))
    keep = np.sort(np.random.default_rng(0).choice(rows, 4000, replace=False))
    new_row = np.full(len(ijk), -1)
    new_row[keep] = np.arange(len(keep))
    sub = []
    for area_index, r, p in areas:
        on = new_row[r] >= 0
        if on.any():
            sub.append((area_index, new_row[r[on]], p[on]))
    total = np.zeros(len(keep))
    for _, r, p in sub:
        total[r] += p
    expected = np.zeros((len(keep), len(atlas.areas)))
    for area_index, r, p in sub:
        expected[r, area_index] = area_frequencies(p, total[r])[0]
    s, n_brains = CFG.synth, 60
    bins = np.linspace(0, 1, 11)
    which = np.digitize(expected, bins[1:-1])
    observed = np.zeros((n_brains, 10))
    counted = np.zeros((n_brains, 10))
    none_share = np.zeros(n_brains)
    for b in range(n_brains):
        model = make_brain("B", atlas, (ijk[keep], sub), s, np.random.default_rng([99, b]))
        got = model.labels.data[tuple(ijk[keep].T)]
        none_share[b] = np.mean(got < 0)
        hit = np.zeros_like(expected, bool)
        hit[np.arange(len(keep))[got >= 0], got[got >= 0]] = True
        on = expected > 0
        observed[b] = np.bincount(which[on], hit[on], minlength=10)
        counted[b] = np.bincount(which[on], minlength=10)
    on = expected > 0
    predicted = np.bincount(which[on], expected[on], minlength=10) / np.maximum(np.bincount(which[on], minlength=10), 1)
    frequency = observed.sum(0) / np.maximum(counted.sum(0), 1)
    per_brain = observed / np.maximum(counted, 1)
    se = per_brain.std(0, ddof=1) / np.sqrt(n_brains)
    filled = counted.sum(0) >= 50 * n_brains
    assert filled.sum() >= 6
    assert np.all(np.abs(frequency - predicted)[filled] <= 4 * se[filled] + 0.01), (frequency, predicted, se)
    # and no area where the maps leave mass unassigned, as often as they leave it
    none = area_frequencies(np.zeros(len(keep)), total)[1].mean()
    assert none > 0.05 and abs(none_share.mean() - none) <= 4 * none_share.std(ddof=1) / np.sqrt(n_brains) + 0.01


def _patch_features(p):
    q = np.percentile(p, [5, 25, 50, 75, 95])
    gy, gx = np.gradient(p.astype(np.float32))
    return [p.mean(), p.std(), *q, (p < 120).mean(), (p < 180).mean(), np.abs(gx).mean() + np.abs(gy).mean()]


def test_texture_alone_tells_areas_apart_across_brains_but_neighbours_stay_hard(synth_landing):
    X, y, g = [], [], []
    half = 8
    rng = np.random.default_rng(0)
    for b in ("B01", "B02"):
        for k in (1, 2, 3):
            img = tifffile.imread(synth_landing / b / "images" / f"section_{k:04d}.tif")
            lab = tifffile.imread(synth_landing / b / "truth" / f"section_{k:04d}_labels.tif")
            d = img.shape[0] // lab.shape[0]
            rr, cc = np.nonzero(lab)
            for i in rng.permutation(len(rr))[:3000]:
                r, c = rr[i] * d + d // 2, cc[i] * d + d // 2
                p = img[r - half:r + half, c - half:c + half]
                if p.shape == (2 * half, 2 * half):
                    X.append(_patch_features(p))
                    y.append(int(lab[rr[i], cc[i]]) - 1)
                    g.append(b)
    X, y, g = np.array(X), np.array(y), np.array(g)
    n1, n2 = Counter(y[g == "B01"]), Counter(y[g == "B02"])
    keep = np.array([n1[v] >= 30 and n2[v] >= 30 for v in y])
    X, y, g = X[keep], y[keep], g[keep]
    classes = sorted(set(y))
    assert len(classes) >= 10
    clf = RandomForestClassifier(200, random_state=0, n_jobs=2).fit(X[g == "B01"], y[g == "B01"])
    pred = clf.predict(X[g == "B02"])
    truth = y[g == "B02"]
    chance = 1 / len(classes)
    assert balanced_accuracy_score(truth, pred) > 3 * chance  # trained on one brain, scored on another
    # errors fall mostly within an area's family (e.g. BA1 vs BA2, or the other hemisphere)
    names = {a.area_id: a.name for a in Atlas(AtlasSettings()).areas}
    wrong = pred != truth
    same_family = [family(names[p]) == family(names[t]) for p, t in zip(pred[wrong], truth[wrong])]
    fam = [family(names[c]) for c in classes]
    base = np.mean([fa == fb for fa in fam for fb in fam])
    # more often than a confusion blind to the family would (one-sided binomial test at 1 %)
    assert binomtest(int(np.sum(same_family)), len(same_family), base, alternative="greater").pvalue < 0.01


def test_each_area_keeps_its_own_thickness_where_the_template_ribbon_is_thinner():
    """The cortex is laid to each area's own thickness, not squeezed into the template's grey-matter ribbon
    nor cut at it: a pixel's depth and its distance to white matter imply the thickness of its area, and
    where the ribbon is too thin the cortex goes on beyond it. (When the cortex stopped at the ribbon,
    32-43 % of these sections' cortex implied less than 0.85 of its thickness, and none lay beyond it.)
    Within 2 mm of a change of area (twice the 1 mm over which `section_truth` blends two areas' thicknesses,
    on purpose) a pixel implies a blend, so those pixels are left out."""
    from scipy.ndimage import distance_transform_edt, maximum_filter, minimum_filter

    from cytolake.synth.brains import (atlas_support, brain_plan, grey_and_white, load_anatomy, section_shape,
                                       section_truth, template_tissue)
    from cytolake.synth.texture import signature_tables

    s, atlas = CFG.synth, Atlas(CFG.atlas)
    assert s.spacing_um == 200.0  # the anatomy's own grid: template_tissue at q = 1 is the section's pixels
    anatomy, support, shape = load_anatomy(), atlas_support(atlas), section_shape(s)
    for brain in (0, 1):
        plan = brain_plan(brain, s, atlas, support)
        thickness = signature_tables(plan.signatures)["thickness_mm"]
        for job in plan.jobs:
            where = (plan.brain_id, job["section_id"])
            t = section_truth(plan.model, anatomy, job["affine"], shape, s.spacing_um, thickness)
            to_white_mm = distance_transform_edt(~t["white"]) * s.spacing_um / 1000
            gm, wm, area = template_tissue(plan.model, anatomy, job["affine"], shape, 1)
            area = area[: shape[0], : shape[1]]
            change = maximum_filter(area, 3) != minimum_filter(area, 3)
            blended = distance_transform_edt(~change) * s.spacing_um / 1000 <= 2.0
            c = t["cortex"] & (t["area"] >= 0) & (t["depth"] < 0.8) & ~blended
            implied = to_white_mm[c] / (1 - t["depth"][c])
            assert c.sum() > 1000
            assert np.mean(implied < 0.85 * thickness[t["area"][c] + 1]) < 0.05, where
            grey = grey_and_white(gm, wm)[0]
            beyond = t["cortex"] & ~grey[: shape[0], : shape[1]]
            assert 0.01 < beyond.mean() / t["cortex"].mean() < 0.15, where  # 2-5 % here


def test_a_brain_drawn_by_an_earlier_world_is_rendered_again_and_an_identical_one_kept(landing, cfg):
    from cytolake.synth.brains import WORLD_VERSION
    from cytolake.synth.job import run_synthesize

    image = landing / "B01" / "images" / "section_0001.tif"
    before = image.stat().st_mtime_ns
    assert run_synthesize(cfg, workers=1, log=quiet) == [("B01", False), ("B02", False)]
    assert image.stat().st_mtime_ns == before
    stamp = landing / "B01" / "synth.json"
    earlier = json.loads(stamp.read_text()) | {"world_version": WORLD_VERSION - 1}
    stamp.write_text(json.dumps(earlier, sort_keys=True))
    assert run_synthesize(cfg, workers=1, log=quiet) == [("B01", True), ("B02", False)]
    assert json.loads(stamp.read_text())["world_version"] == WORLD_VERSION


def test_every_area_of_the_atlas_has_a_laminar_signature_true_to_its_type():
    names = {a.name for a in Atlas(AtlasSettings()).areas}
    sig = {n: cyto.signature(n) for n in names}  # raises for an area without one
    iv = cyto.LAMINAE.index("IV")
    # agranular motor cortex has no layer IV; koniocortex has the widest
    assert all(sig[n].thickness[iv] == 0 for n in names if "motor" in n)
    konio = sig["Primary_somatosensory_cortex_BA3b"].thickness[iv]
    assert konio == max(s.thickness[iv] for n, s in sig.items() if "V1" not in n)
    # Betz cells: the largest somata of the map sit in Vb of BA4a; BA4p has smaller ones; BA6 none
    vb = cyto.LAMINAE.index("Vb")
    assert sig["Primary_motor_cortex_BA4a"].soma_um[vb] > 50 > sig["Primary_motor_cortex_BA4p"].soma_um[vb] > 35
    assert sig["Premotor_cortex_BA6"].soma_um[vb] < 30
    # motor cortex is the thickest, koniocortex among the thinnest
    assert sig["Primary_motor_cortex_BA4a"].thickness_mm > 3.5 > 2.2 > sig["Primary_somatosensory_cortex_BA3b"].thickness_mm
    # areas of one family differ, but less than areas of different types
    def dist(a, b):
        return float(np.abs(np.array(a.thickness) - b.thickness).sum() + np.abs(np.log1p(a.density) - np.log1p(b.density)).mean())
    fam = ["Primary_somatosensory_cortex_BA1", "Primary_somatosensory_cortex_BA3b"]
    assert 0 < dist(sig[fam[0]], sig[fam[1]]) < dist(sig["Primary_motor_cortex_BA4a"], sig[fam[1]])


def test_each_brain_varies_a_signature_a_little():
    base = cyto.signature("Inferior_parietal_lobule_PF")
    a, b = (cyto.brain_signature(base, np.random.default_rng(s), 1.0) for s in (1, 2))
    assert a != b and abs(sum(a.thickness) - 1) < 1e-9
    assert np.allclose(a.thickness, base.thickness, rtol=0.5) and not np.allclose(a.thickness, base.thickness, rtol=1e-3)


def test_artifacts_damage_tissue_only_as_described():
    from cytolake.synth.texture import damage

    od = np.full((400, 400), 0.3, np.float32)
    tissue = np.zeros_like(od, bool)
    tissue[50:350, 50:350] = True
    for kind in ("tear", "fold", "missing", "bubble"):
        out = damage(od, tissue, (kind,), 40.0, np.random.default_rng(0))
        changed = out != od
        assert changed.any(), kind
        if kind in ("tear", "missing"):
            assert (out[changed] == 0).all()  # bare slide
        if kind == "fold":
            assert np.allclose(out[changed], 0.3 * 1.9)  # tissue doubled


SYNTH_AFTER_TORCH = """
import sys
from pathlib import Path

sys.path.insert(0, {tests!r})


def main():
    import torch

    # torch's OpenMP threads are up, as in any process that trained or embedded before synthesizing
    torch.nn.functional.interpolate(torch.rand(1, 1, 800, 800), size=(1600, 1600), mode="bilinear")
    from conftest import settings_at
    from cytolake.synth.job import run_synthesize

    cfg = settings_at(Path({base!r}))
    cfg = cfg.model_copy(update={{"synth": cfg.synth.model_copy(update={{"brains": 1, "sections_per_brain": 2}})}})
    print(run_synthesize(cfg, workers=2, log=lambda *a: None))


if __name__ == "__main__":
    main()
"""


@pytest.mark.slow
def test_sections_render_in_parallel_in_a_process_that_already_used_torch(tmp_path):
    """The renderers are not forked from the caller: a forked child of a process whose OpenMP pool is running
    waits forever for threads it does not have (seen under pytest-xdist)."""
    script = tmp_path / "synth_after_torch.py"
    script.write_text(SYNTH_AFTER_TORCH.format(tests=str(ROOT / "tests"), base=str(tmp_path)))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "[('B01', True)]" in r.stdout
    assert len(read_manifest(tmp_path / "landing" / "B01" / "manifest.csv", tmp_path / "landing")) == 2
