"""Synthetic brains: a true parcellation drawn with the pmaps' frequencies, a small deformation of the
tissue, coronal sections rendered as tiled images, a manifest, annotations for some sections, and the truth for scoring.

Geometry of a section: pixel (col, row) of section image k maps to MNI mm through the 4x4 affine in
the manifest, `xyz = A @ (col, row, 0, 1)` (integer pixel indices are pixel centres). The brain's true
anatomy is the MNI anatomy displaced by a smooth field, so the manifest affine (the registration) is
good but not perfect, as with real brains.
"""

from __future__ import annotations

import json
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter, map_coordinates
from scipy.special import log_ndtr

from cytolake.atlas.pmaps import Atlas
from cytolake.config import SynthSettings
from cytolake.io.images import write_pyramid_tiff
from cytolake.io.labels import label_values
from cytolake.io.manifest import write_manifest
from cytolake.synth.cytoarchitecture import brain_signatures
from cytolake.synth.texture import render_section, section_style, signature_tables

ANATOMY_STEP_UM = 200.0  # anatomy (tissue class, depth, area) is computed on this grid and upsampled
# What a landing's content depends on besides the settings: raised whenever the same settings draw a
# different world, so that a landing written before is rendered again rather than kept.
# 2: each area's cortex laid to its own thickness also where the template's ribbon is thinner
# 3: each brain's parcellation drawn with the maps' own frequencies; the deformation moves tissue only
WORLD_VERSION = 3


@dataclass(frozen=True)
class Volume:
    data: np.ndarray
    affine: np.ndarray

    def sample(self, xyz: np.ndarray, order: int = 1, cval: float = 0.0) -> np.ndarray:
        """Values at MNI positions xyz (..., 3)."""
        ijk = nib.affines.apply_affine(np.linalg.inv(self.affine), xyz.reshape(-1, 3)).T
        return map_coordinates(self.data, ijk, order=order, mode="constant", cval=cval).reshape(xyz.shape[:-1])


def load_anatomy() -> tuple[Volume, Volume]:
    """Grey- and white-matter probability of the MNI152 (2009a sym) template shipped with nilearn."""
    from nilearn import datasets

    gm = datasets.load_mni152_gm_template(resolution=1)
    wm = datasets.load_mni152_wm_template(resolution=1)
    return (Volume(np.asarray(gm.get_fdata(), np.float32), gm.affine),
            Volume(np.asarray(wm.get_fdata(), np.float32), wm.affine))


@dataclass(frozen=True)
class BrainModel:
    brain_id: str
    labels: Volume  # area_index per atlas voxel, -1 where no area
    displacement: tuple[Volume, Volume, Volume]  # mm, per axis, on a coarse grid

    def warp(self, xyz: np.ndarray) -> np.ndarray:
        """Where the MNI position xyz lies in this brain's anatomy."""
        return xyz + np.stack([d.sample(xyz, order=3) for d in self.displacement], axis=-1)


def atlas_support(atlas: Atlas) -> tuple[np.ndarray, list[tuple[int, np.ndarray, np.ndarray]]]:
    """Voxels where any selected area has probability > 0 (ijk, n_voxels x 3), and each area's non-zero part of
    its map as (area_index, rows of those voxels, probabilities): sparse, as most areas cover few voxels."""
    nonzero = []
    for a in atlas.areas:
        m = atlas.area_map(a).ravel()
        on = np.flatnonzero(m > 0)
        nonzero.append((a.area_index, on, m[on]))
    mask = np.zeros(int(np.prod(atlas.shape)), bool)
    for _, on, _ in nonzero:
        mask[on] = True
    voxels = np.flatnonzero(mask)
    areas = [(area_index, np.searchsorted(voxels, on), values) for area_index, on, values in nonzero]
    return np.argwhere(mask.reshape(atlas.shape)), areas


def gumbel_field(rng: np.random.Generator, coarse_shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    """Standard-Gumbel values at `points` (3, n; coordinates of a coarse grid), spatially smooth: white Gaussian
    noise on the grid, interpolated trilinearly, brought back to unit variance at every point (interpolation
    between grid nodes shrinks it by the sum of the squared weights) and mapped through the Gumbel quantile
    function, so each point's value is exactly Gumbel-distributed whatever its place between the nodes."""
    g = rng.standard_normal(coarse_shape).astype(np.float32)
    z = map_coordinates(g, points, order=1)
    f = points - np.floor(points)
    z = z / np.sqrt(np.prod(f**2 + (1 - f) ** 2, axis=0))
    return -np.log(-log_ndtr(z))


def area_frequencies(p: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How often each area occurs at a voxel (its maps' probability, scaled down where the maps sum to more
    than 1) and how often none does (the maps' missing mass): `p` one area's probabilities, `total` the sum
    over areas at the same voxels. Returns (area frequency, none frequency)."""
    scale = np.maximum(total, 1.0)
    return p / scale, np.maximum(1.0 - total, 0.0)


def make_brain(brain_id: str, atlas: Atlas, support: tuple[np.ndarray, list], synth: SynthSettings,
               rng: np.random.Generator) -> BrainModel:
    """A brain's own parcellation, drawn so that over brains each area occurs at each voxel as often as its map
    says, and its deformation.

    Why: the Juelich maps are the frequencies with which each area covered a voxel in the atlas's own brains
    after registration to MNI; a synthetic brain is one more such brain. At every voxel the brain takes the
    argmax over areas of log q_a(x) + G_a(x), with q_a the area's frequency (`area_frequencies`) and a "none"
    option of log(1 - sum p) + G_0(x): with independent standard-Gumbel G the argmax is area a with probability
    exactly q_a(x) (the Gumbel-max property), and none with the maps' missing mass. Each G_a is a smooth field
    (`gumbel_field` on a grid of `parcellation_grid_mm`), so neighbouring voxels mostly agree and an area
    moves, grows and shrinks in stretches of about that size rather than in speckle; the frequencies do not
    depend on the grid. The maps' spread already holds the registration residual of their brains, so the
    brain's deformation (`deformation_mm`) moves only its tissue (where grey and white matter lie), not
    its areas relative to the registered coordinates in which the pipeline reads the maps (`template_tissue`).
    """
    ijk, areas = support
    step = synth.parcellation_grid_mm / float(np.abs(np.diag(atlas.affine)[:3]).mean())
    coarse_shape = tuple(int(np.ceil(n / step)) + 2 for n in atlas.shape)
    total = np.zeros(len(ijk), np.float64)
    for _, rows, p in areas:
        total[rows] += p
    _, none = area_frequencies(np.zeros(len(ijk)), total)
    with np.errstate(divide="ignore"):
        best_score = np.log(none) + gumbel_field(rng, coarse_shape, ijk.T / step)
    best = np.full(len(ijk), -1, np.int64)
    for area_index, rows, p in sorted(areas, key=lambda t: t[0]):
        q, _ = area_frequencies(p, total[rows])
        score = np.log(q) + gumbel_field(rng, coarse_shape, ijk[rows].T / step)
        better = score > best_score[rows]
        r = rows[better]
        best_score[r], best[r] = score[better], area_index
    labels = np.full(atlas.shape, -1, np.int16)
    labels[tuple(ijk.T)] = best
    lo, hi = atlas.bounds_mm()
    dstep = 16.0
    dshape = tuple(int(np.ceil((h - l) / dstep)) + 3 for l, h in zip(lo, hi))
    daff = np.diag([dstep, dstep, dstep, 1.0])
    daff[:3, 3] = lo - dstep
    disp = tuple(Volume(rng.normal(0.0, synth.deformation_mm, dshape).astype(np.float32), daff) for _ in range(3))
    return BrainModel(brain_id, Volume(labels, atlas.affine), disp)


def section_affine(synth: SynthSettings, y_mm: float, theta: float, shift: np.ndarray, tilt: float = 0.0) -> np.ndarray:
    """Pixel (col, row, normal) -> MNI mm for a coronal section at y, rotated in-plane by theta, tilted out of
    the coronal plane by `tilt` (the cutting angle, radians, about the left-right axis) and shifted."""
    sp = synth.spacing_um / 1000.0
    x0, x1, z0, z1 = synth.field_mm
    a0 = np.array([[sp, 0, 0, x0], [0, 0, synth.section_thickness_um / 1000.0, y_mm], [0, -sp, 0, z1], [0, 0, 0, 1]])
    c = np.array([(x0 + x1) / 2, y_mm, (z0 + z1) / 2])
    rot = np.eye(4)
    rot[[0, 0, 2, 2], [0, 2, 0, 2]] = [np.cos(theta), -np.sin(theta), np.sin(theta), np.cos(theta)]
    cut = np.eye(4)
    cut[[1, 1, 2, 2], [1, 2, 1, 2]] = [np.cos(tilt), -np.sin(tilt), np.sin(tilt), np.cos(tilt)]
    t_in, t_out = np.eye(4), np.eye(4)
    t_in[:3, 3] = -c
    t_out[:3, 3] = c + np.array([shift[0], 0.0, shift[1]])
    return t_out @ cut @ rot @ t_in @ a0


def section_shape(synth: SynthSettings) -> tuple[int, int]:
    x0, x1, z0, z1 = synth.field_mm
    sp = synth.spacing_um / 1000.0
    return int(round((z1 - z0) / sp)), int(round((x1 - x0) / sp))


def _upsample(a: np.ndarray, q: int, shape: tuple[int, int], order: int) -> np.ndarray:
    """A coarse grid (sample i at full-resolution pixel i*q) brought to `shape`: nearest (order 0) or bilinear."""
    if order == 0:
        rows = np.rint(np.arange(shape[0]) / q).astype(int)
        cols = np.rint(np.arange(shape[1]) / q).astype(int)
        return a[rows][:, cols]
    import torch

    t = torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None]
    size = ((a.shape[0] - 1) * q + 1, (a.shape[1] - 1) * q + 1)
    up = torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=True)[0, 0]
    return up[: shape[0], : shape[1]].numpy()


def template_tissue(model: BrainModel, anatomy: tuple[Volume, Volume], affine: np.ndarray, shape: tuple[int, int],
                    q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The template's grey- and white-matter probabilities through the brain's deformation, and the brain's
    area (-1: none) at the registered position, at every q-th pixel of a section: the anatomy `section_truth`
    lays the cortex on. The areas are drawn in registered coordinates (`make_brain`), so the deformation moves
    the tissue under them but not their frequencies at the positions where the pipeline reads the maps."""
    ch, cw = shape[0] // q + 2, shape[1] // q + 2
    r, c = np.meshgrid(np.arange(ch) * q, np.arange(cw) * q, indexing="ij")
    pix = np.stack([c, r, np.zeros_like(c), np.ones_like(c)], axis=-1).astype(np.float64)
    mni = (pix @ affine.T)[..., :3]
    anat = model.warp(mni)
    return anatomy[0].sample(anat), anatomy[1].sample(anat), model.labels.sample(mni, order=0, cval=-1).astype(np.int16)


def grey_and_white(gm: np.ndarray, wm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The template's grey- and white-matter masks from their probabilities."""
    grey = (gm > 0.5) & (gm >= wm)
    return grey, (wm > 0.5) & ~grey


def section_truth(model: BrainModel, anatomy: tuple[Volume, Volume], affine: np.ndarray, shape: tuple[int, int],
                  spacing_um: float, thickness_mm: np.ndarray) -> dict[str, np.ndarray]:
    """Tissue class, cortical depth and area of every pixel of a section (full resolution).

    The template's grey matter is an average over brains and no brain's cortex: it fills the sulci in, and
    in places its ribbon (grey-matter probability > 0.5 at 1 mm) is thinner than the cortex of the area
    that lies there. Each area's cortex is therefore laid from the white-matter boundary outwards to that
    area's own thickness (`thickness_mm`, indexed by area + 1, 0 = unmapped cortex), whatever the
    template's ribbon: template grey matter beyond it is sulcal space, not tissue, and where the ribbon is
    too thin the cortex goes on outwards into the space outside it, with the area of the grey matter it
    continues, its laminae at their own depths. (Stopping at the ribbon squeezed them, shifting the laminae
    of much of the cortex off their depth: benchmarks/results/science.md, "The cortex laid to each area's own
    thickness".)
    Depth is 0 at the pial surface, 1 at white matter."""
    q = max(1, int(round(ANATOMY_STEP_UM / spacing_um)))
    step_mm = q * spacing_um / 1000.0
    gm, wm, area = template_tissue(model, anatomy, affine, shape, q)
    grey_c, white_c = grey_and_white(gm, wm)
    outside_c = ~(grey_c | white_c)
    d_wm = distance_transform_edt(~white_c).astype(np.float32) * step_mm
    # outside the template's tissue, the pixels that continue its grey matter away from the white matter: the
    # shortest way to white matter runs through the nearest grey pixel (so not a ventricle's wall, nor the
    # far bank of a fissure); they take that pixel's area
    beyond = np.zeros_like(grey_c)
    if grey_c.any():
        d_grey, (gr, gc) = distance_transform_edt(~grey_c, return_indices=True)
        d_grey = d_grey * step_mm
        beyond = (outside_c & (d_grey <= thickness_mm.max())
                  & (np.abs(d_wm - (d_wm[gr, gc] + d_grey)) <= step_mm))
        area = np.where(beyond, area[gr, gc], area)
    gm_f = _upsample(gm.astype(np.float32), q, shape, 1)
    wm_f = _upsample(wm.astype(np.float32), q, shape, 1)
    d_wm_f = _upsample(d_wm, q, shape, 1)
    area_f = _upsample(area, q, shape, 0)
    grey, white = grey_and_white(gm_f, wm_f)
    # thickness changes over about a millimetre across an area border, not in one step
    own_c = gaussian_filter(thickness_mm[area + 1].astype(np.float32), 1.0 / step_mm)
    own = _upsample(own_c, q, shape, 1)
    cortex = ~white & (grey | _upsample(beyond, q, shape, 0)) & (d_wm_f <= own)
    return {
        "cortex": cortex,
        "white": white,
        "depth": np.where(cortex, np.clip(1.0 - d_wm_f / np.maximum(own, 1e-3), 0, 1), 0).astype(np.float32),
        "area": np.where(cortex, area_f, -1).astype(np.int16),
    }


_WORK: dict = {}  # what every section of the brain being rendered shares, set once per rendering process


def _set_work(work: dict) -> None:
    _WORK.clear()
    _WORK.update(work)


def _render_one(job: dict) -> dict:
    w = _WORK
    s: SynthSettings = w["settings"]
    shape = section_shape(s)
    truth = section_truth(w["model"], w["anatomy"], job["affine"], shape, s.spacing_um, w["tables"]["thickness_mm"])
    rng = np.random.default_rng(job["seed"])
    pid = (truth["area"] + 1).astype(np.int32)  # 0 = cortex outside every mapped area
    img = render_section(w["tables"], pid, truth["depth"], truth["cortex"], truth["white"], s.spacing_um,
                         s.section_thickness_um, job["style"], rng)
    out: Path = w["out"]
    write_pyramid_tiff(out / job["image_path"], img, s.spacing_um, tile=s.tile_px, min_px=s.pyramid_min_px)
    d = s.annotation_downsample
    area_ids = np.asarray(w["area_ids"], np.uint16)
    low = truth["area"][d // 2::d, d // 2::d]
    lab = label_values(low, area_ids).astype(np.uint16)
    write_pyramid_tiff(out / job["truth_path"], lab, s.spacing_um * d, tile=s.tile_px, min_px=10**9, compression="zlib")
    if job["annotation_path"]:
        write_pyramid_tiff(out / job["annotation_path"], lab, s.spacing_um * d, tile=s.tile_px, min_px=10**9)
    return job


def brain_ids(n: int) -> list[str]:
    return [f"B{i + 1:02d}" for i in range(n)]


def _fingerprint(synth: SynthSettings, atlas: Atlas) -> str:
    """What a brain's content depends on: every synth setting but how many brains are asked for (brain i is
    drawn from seed [seed, i] alone), so asking for more brains keeps the ones already written, and the
    world's version (`WORLD_VERSION`), so a brain drawn by an earlier renderer is drawn again."""
    return json.dumps({"synth": synth.model_dump(mode="json", exclude={"brains"}), "atlas": atlas.hash,
                       "world_version": WORLD_VERSION}, sort_keys=True)


@dataclass(frozen=True)
class BrainPlan:
    """Everything a brain's rendering is drawn from: its parcellation and deformation, one job per section
    (affine, seed, style, file names), and its areas' laminar signatures."""
    brain_id: str
    model: BrainModel
    jobs: list[dict]
    signatures: list  # of cytoarchitecture.Signature: index 0 unmapped cortex, then the atlas areas in order


def brain_plan(brain_index: int, synth: SynthSettings, atlas: Atlas, support) -> BrainPlan:
    """Brain `brain_index` as drawn from seeds [seed, brain_index] (and [..., 1] for its signatures) alone."""
    brain_id = brain_ids(brain_index + 1)[-1]
    rng = np.random.default_rng([synth.seed, brain_index])
    model = make_brain(brain_id, atlas, support, synth, rng)
    n = synth.sections_per_brain
    ys = np.linspace(*synth.y_range_mm, n)
    gap = (synth.y_range_mm[1] - synth.y_range_mm[0]) / max(n, 1)
    ys = ys + rng.uniform(-0.25, 0.25, n) * gap
    annotated = set(rng.choice(n, size=int(round(synth.annotated_fraction * n)), replace=False).tolist())
    # the brain's staining and scanning; each section varies around it (texture.section_style)
    stain, gain, offset = float(np.exp(rng.normal(0, 0.1))), rng.uniform(0.92, 1.08), rng.uniform(-6, 6)
    jobs = []
    for k in range(n):
        section_id = k + 1
        aff = section_affine(synth, float(ys[k]), rng.normal(0, np.deg2rad(2.0)), rng.normal(0, 1.5, 2),
                             rng.normal(0, np.deg2rad(synth.cutting_angle_sd_deg)))
        jobs.append({
            "section_id": section_id, "affine": aff, "seed": int(rng.integers(2**31)),
            "style": section_style(rng, stain, gain, offset, synth.artifact_fraction),
            "image_path": f"images/section_{section_id:04d}.tif",
            "truth_path": f"truth/section_{section_id:04d}_labels.tif",
            "annotation_path": f"annotations/section_{section_id:04d}_labels.tif" if k in annotated else "",
        })
    signatures = brain_signatures([a.name for a in atlas.areas], np.random.default_rng([synth.seed, brain_index, 1]))
    return BrainPlan(brain_id, model, jobs, signatures)


def synthesize_brain(brain_index: int, synth: SynthSettings, atlas: Atlas, support, anatomy, landing: Path,
                     workers: int, progress=None) -> tuple[str, bool]:
    """Write one brain into landing/<brain_id>/; returns (brain_id, written). An identical brain is kept."""
    brain_id = brain_ids(brain_index + 1)[-1]
    out = landing / brain_id
    stamp = out / "synth.json"
    fp = _fingerprint(synth, atlas)
    if (out / "manifest.csv").is_file() and stamp.is_file() and stamp.read_text() == fp:
        return brain_id, False
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(exist_ok=True)
    (out / "truth").mkdir(exist_ok=True)
    plan = brain_plan(brain_index, synth, atlas, support)
    model, jobs, signatures = plan.model, plan.jobs, plan.signatures
    work = dict(settings=synth, model=model, anatomy=anatomy, tables=signature_tables(signatures), out=out,
                area_ids=[a.area_id for a in atlas.areas])
    try:
        if workers > 1:
            # forkserver, not fork: a process that has used torch's OpenMP pool (or holds any lock in another
            # thread) before this call hangs forever in a forked child.
            with mp.get_context("forkserver").Pool(workers, initializer=_set_work, initargs=(work,)) as pool:
                for job in pool.imap_unordered(_render_one, jobs):
                    progress and progress(brain_id, job["section_id"])
        else:
            _set_work(work)
            for job in jobs:
                _render_one(job)
                progress and progress(brain_id, job["section_id"])
    finally:
        _WORK.clear()
    parc = label_values(model.labels.data, np.asarray([a.area_id for a in atlas.areas]))
    nib.save(nib.Nifti1Image(parc.astype(np.int16), atlas.affine), out / "truth" / "parcellation.nii.gz")
    write_manifest(out / "manifest.csv", [
        {"brain_id": brain_id, "section_id": j["section_id"], "image_path": j["image_path"], "spacing_um": synth.spacing_um,
         "transform": j["affine"], "annotation_path": j["annotation_path"]} for j in jobs])
    stamp.write_text(fp)
    return brain_id, True
