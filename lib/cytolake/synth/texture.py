"""Rendering a Nissl-like section from laminar signatures: cell bodies counted per pixel, darkening it
by their projected area (Beer-Lambert), so grey level follows the layer's cell-body area fraction (the
grey-level index of quantitative cytoarchitecture) and graininess follows soma size.

A section's own look (stain, illumination, noise) and its damage (tears, folds, missing pieces, air
bubbles) are `SectionStyle`; the signatures and their reasoning are `cytoarchitecture`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from cytolake.synth.cytoarchitecture import GLIA_PER_MM3, GLIA_UM, LAMINAE, WHITE_GLIA_PER_MM3, Signature

BACKGROUND = 245.0  # transmitted light through the bare slide
STAIN_OD = 2.5  # optical density of a fully covered pixel: a layer with 20% cell-body area reads ~150 grey
NEUROPIL_OD = {"cortex": 0.04, "white": 0.02}  # faint background staining of the tissue itself
SIZE_SPREAD = 0.30  # log-sd of the summed soma area in a pixel
ARTIFACTS = ("tear", "fold", "missing", "bubble")


@dataclass(frozen=True)
class SectionStyle:
    """How one section was stained, scanned and damaged."""

    stain: float = 1.0  # multiplies optical density (staining intensity)
    gain: float = 1.0  # illumination
    offset: float = 0.0
    noise: float = 4.0  # sd of scanner noise, grey levels
    artifacts: tuple[str, ...] = field(default_factory=tuple)


def section_style(rng: np.random.Generator, brain_stain: float, brain_gain: float, brain_offset: float,
                  artifact_fraction: float) -> SectionStyle:
    """A section of a brain: the brain's staining varied a little per section; a share of sections damaged."""
    damaged = rng.random() < artifact_fraction
    kinds = tuple(rng.choice(ARTIFACTS, size=int(rng.integers(1, 3)), replace=False).tolist()) if damaged else ()
    return SectionStyle(stain=brain_stain * float(np.exp(rng.normal(0, 0.05))), gain=brain_gain * rng.uniform(0.97, 1.03),
                        offset=brain_offset + rng.uniform(-3, 3), noise=rng.uniform(2.5, 5.0), artifacts=kinds)


def signature_tables(signatures: list[Signature]) -> dict[str, np.ndarray]:
    """Stacked lookup tables (n_signatures x laminae) for vectorised rendering."""
    bands = np.array([s.band or (2.0, 2.0, 1.0, 1.0) for s in signatures])
    return {
        "cum": np.stack([np.cumsum(s.thickness)[:-1] for s in signatures]),
        "density": np.stack([s.density for s in signatures]),
        "soma": np.stack([s.soma_um for s in signatures]),
        "band": bands,
        "islands": np.array([s.islands for s in signatures]),
        "thickness_mm": np.array([s.thickness_mm for s in signatures]),
    }


def _blurred(mass: np.ndarray, soma_px: np.ndarray) -> np.ndarray:
    """Spread each pixel's cell-body area over the cell's extent (cells larger than a pixel)."""
    out = np.where(soma_px < 0.6, mass, 0.0).astype(np.float32)
    for lo, hi in ((0.6, 1.2), (1.2, 2.0), (2.0, np.inf)):
        sel = (soma_px >= lo) & (soma_px < hi)
        if sel.any():
            sigma = 0.4 * (lo + min(hi, 2 * lo)) / 2
            out += gaussian_filter(np.where(sel, mass, 0.0).astype(np.float32), sigma)
    return out


def _islands(shape: tuple[int, int], spacing_um: float, rng: np.random.Generator) -> np.ndarray:
    """A field of cell islands ~0.3 mm across: 1.6 inside, 0.4 between (mean about 1)."""
    sigma = max(0.5, 150.0 / spacing_um)
    g = gaussian_filter(rng.normal(size=shape).astype(np.float32), sigma)
    return np.where(g > 0, 1.6, 0.4).astype(np.float32)


def laminar_cells(tables: dict[str, np.ndarray], p: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lamina, neuron density (per mm^3) and soma diameter (um) at cortical depths d (0 pial .. 1 white matter)
    of signatures p (indices into `tables`), the signature's band laid over its laminae."""
    cum = tables["cum"]
    lamina = np.zeros(len(d), np.int64)
    for k in range(cum.shape[1]):
        lamina += d > cum[p, k]
    density = tables["density"].astype(np.float32)[p, lamina]
    soma = tables["soma"].astype(np.float32)[p, lamina]
    band = tables["band"][p]
    in_band = (d >= band[:, 0]) & (d < band[:, 1])
    if in_band.any():
        density[in_band] *= band[in_band, 2]
        soma[in_band] *= band[in_band, 3]
    return lamina, density, soma


def cell_area_fraction(tables: dict[str, np.ndarray], pid: np.ndarray, depth: np.ndarray, cortex: np.ndarray,
                       white: np.ndarray, spacing_um: float, thickness_um: float, rng: np.random.Generator) -> np.ndarray:
    """Per pixel, the area fraction covered by stained cell bodies (neurons by lamina, glia everywhere).

    Computed on the cortex pixels only (a section is mostly slide and white matter), as flat arrays."""
    h, w = pid.shape
    voxel_mm3 = spacing_um**2 * thickness_um * 1e-9
    px_um2 = spacing_um**2
    on = np.flatnonzero(cortex)
    p, d = pid.ravel()[on], depth.ravel()[on]
    cum = tables["cum"]
    lamina, density, soma = laminar_cells(tables, p, d)
    isl = tables["islands"][p]
    clustered = (isl > 0) & ((lamina == LAMINAE.index("II")) | (cum[p, 0] == 0))  # layer II, or a nucleus
    if clustered.any():  # the island field over the clustered pixels' bounding box only
        r, c = np.divmod(on[clustered], w)
        r0, c0 = r.min(), c.min()
        field_ = _islands((r.max() - r0 + 1, c.max() - c0 + 1), spacing_um, rng)[r - r0, c - c0]
        density[clustered] *= 1 - isl[clustered] + isl[clustered] * field_
    n = rng.poisson(density * voxel_mm3).astype(np.float32)
    spread = np.exp(SIZE_SPREAD * rng.standard_normal(len(on), dtype=np.float32))
    mass = np.zeros(h * w, np.float32)
    mass[on] = n * (np.pi / 4) * soma**2 / px_um2 * spread
    soma_px = np.zeros(h * w, np.float32)
    soma_px[on] = soma / spacing_um
    frac = _blurred(mass.reshape(h, w), soma_px.reshape(h, w))
    glia = np.where(cortex, GLIA_PER_MM3 * voxel_mm3, np.where(white, WHITE_GLIA_PER_MM3 * voxel_mm3, 0.0))
    frac += rng.poisson(glia).astype(np.float32) * np.float32(np.pi / 4 * GLIA_UM**2 / px_um2)
    return frac


def _line_mask(shape, rng, width_px: float) -> np.ndarray:
    """A jittered line across the field, `width_px` wide."""
    from scipy.ndimage import distance_transform_edt

    h, w = shape
    n = 2 * (h + w)
    t = np.linspace(0, 1, n)[:, None]
    p0, p1 = rng.uniform([0, 0], [h, w]), rng.uniform([0, 0], [h, w])
    wobble = gaussian_filter(rng.normal(0, 0.02 * max(h, w), (n, 2)), (n / 20, 0))
    pts = p0 + t * (p1 - p0) + wobble
    m = np.zeros(shape, bool)
    m[np.clip(np.rint(pts[:, 0]).astype(int), 0, h - 1), np.clip(np.rint(pts[:, 1]).astype(int), 0, w - 1)] = True
    return distance_transform_edt(~m) <= max(width_px / 2, 0.5)


def _disc(shape, centre, radius) -> np.ndarray:
    rr, cc = np.ogrid[: shape[0], : shape[1]]
    return (rr - centre[0]) ** 2 + (cc - centre[1]) ** 2 <= radius**2


def damage(od: np.ndarray, tissue: np.ndarray, kinds: tuple[str, ...], spacing_um: float,
           rng: np.random.Generator) -> np.ndarray:
    """Tissue artifacts in optical density: a tear (a gap), a fold (tissue doubled along a strip), a missing
    piece (a blob of bare slide) and an air bubble (a bright disc with a dark rim)."""
    od = od.copy()
    shape, mm = od.shape, 1000.0 / spacing_um
    inside = np.argwhere(tissue)
    if not len(inside):
        return od
    for kind in kinds:
        centre = inside[rng.integers(len(inside))]
        if kind == "tear":
            od[_line_mask(shape, rng, rng.uniform(0.05, 0.15) * mm)] = 0.0
        elif kind == "fold":
            strip = _line_mask(shape, rng, rng.uniform(0.3, 0.8) * mm)
            od[strip] *= 1.9
        elif kind == "missing":
            blob = _disc(shape, centre, rng.uniform(3, 8) * mm)
            g = gaussian_filter(rng.normal(size=shape).astype(np.float32), 1.5 * mm)
            od[blob & (g > -0.02)] = 0.0
        elif kind == "bubble":
            r = rng.uniform(1, 3) * mm
            disc = _disc(shape, centre, r)
            rim = _disc(shape, centre, r + max(1.0, 0.08 * mm)) & ~disc
            od[disc] *= 0.3
            od[rim] += 0.8
    return od


def render_section(tables: dict[str, np.ndarray], pid: np.ndarray, depth: np.ndarray, cortex: np.ndarray,
                   white: np.ndarray, spacing_um: float, thickness_um: float, style: SectionStyle,
                   rng: np.random.Generator) -> np.ndarray:
    """A Nissl-like uint8 image: dark cell bodies on a bright slide.

    pid: signature index per pixel (0 = unmapped cortex), depth: 0 at the pial surface to 1 at white matter."""
    frac = cell_area_fraction(tables, pid, depth, cortex, white, spacing_um, thickness_um, rng)
    od = STAIN_OD * frac + np.where(cortex, NEUROPIL_OD["cortex"], np.where(white, NEUROPIL_OD["white"], 0.0)).astype(np.float32)
    od = damage(od * style.stain, cortex | white, style.artifacts, spacing_um, rng)
    img = BACKGROUND * np.exp(-od) * style.gain + style.offset + style.noise * rng.standard_normal(od.shape, np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
