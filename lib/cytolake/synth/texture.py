"""Area-specific laminar cytoarchitecture: six layers whose thickness, cell density and cell size differ per area.

Profiles are a property of the area, not of the brain: drawn from a seed and the area's name, so
left and right hemisphere share one. Areas of one family (e.g. the BA1/BA2/BA3a/BA3b of primary
somatosensory cortex) share a base profile and differ only a little, so neighbours stay hard.
Cell sizes and densities are in pixels so the texture stays visible at the coarse spacings a
laptop can afford; layer thicknesses are physical (fractions of the local cortical depth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xxhash

N_LAYERS = 6
SIZE_SIGMAS_PX = (0.6, 1.0, 1.6)  # small granule cells, medium, large pyramidal cells


@dataclass(frozen=True)
class Profile:
    thickness: np.ndarray  # (6,) fractions summing to 1, pial to white
    density: np.ndarray  # (6,) cells per pixel
    size_class: np.ndarray  # (6,) index into SIZE_SIGMAS_PX
    neuropil: np.ndarray  # (6,) background darkening per layer (intensity units)


def _rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng(xxhash.xxh64_intdigest("/".join(names).encode(), seed=seed & 0xFFFFFFFF))


def family(name: str) -> str:
    """The family of an area: its name without the last token (`Primary_motor_cortex_BA4a` -> `Primary_motor_cortex`)."""
    parts = name.rsplit("_", 1)
    return parts[0] if len(parts) == 2 else name


def _base(rng: np.random.Generator) -> Profile:
    thickness = rng.dirichlet(np.array([1.0, 2.0, 2.5, 1.2, 2.2, 1.8]) * 6)
    density = rng.uniform(0.01, 0.09, N_LAYERS)
    size_class = rng.integers(0, len(SIZE_SIGMAS_PX), N_LAYERS)
    neuropil = rng.uniform(5, 35, N_LAYERS)
    return Profile(thickness, density, size_class, neuropil)


def area_profile(name: str, seed: int, variation: float = 0.35) -> Profile:
    """The laminar profile of an area: its family's base, varied by `variation`."""
    base = _base(_rng(seed, "family", family(name)))
    r = _rng(seed, "area", name)
    thickness = (1 - variation) * base.thickness + variation * r.dirichlet(np.ones(N_LAYERS) * 4)
    density = np.clip(base.density * np.exp(r.normal(0, variation, N_LAYERS)), 0.003, 0.15)
    size_class = base.size_class.copy()
    flip = r.random(N_LAYERS) < variation
    size_class[flip] = r.integers(0, len(SIZE_SIGMAS_PX), flip.sum())
    neuropil = np.clip(base.neuropil + r.normal(0, 15 * variation, N_LAYERS), 0, 60)
    return Profile(thickness / thickness.sum(), density, size_class, neuropil)


GENERIC = Profile(np.full(N_LAYERS, 1 / N_LAYERS), np.full(N_LAYERS, 0.03), np.ones(N_LAYERS, int), np.full(N_LAYERS, 15.0))
WHITE = Profile(np.ones(1), np.array([0.004]), np.zeros(1, int), np.array([8.0]))


def profile_tables(profiles: list[Profile]) -> dict[str, np.ndarray]:
    """Stacked lookup tables (n_profiles x 6) for vectorised rendering."""
    return {
        "cum": np.stack([np.cumsum(p.thickness)[:-1] for p in profiles]),
        "density": np.stack([p.density for p in profiles]),
        "size_class": np.stack([p.size_class for p in profiles]),
        "neuropil": np.stack([p.neuropil for p in profiles]),
    }


def render_cells(tables: dict[str, np.ndarray], pid: np.ndarray, depth: np.ndarray, cortex: np.ndarray,
                 white: np.ndarray, rng: np.random.Generator, gain: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """A Nissl-like uint8 image: dark cell bodies on a bright background.

    pid: profile index per pixel (cortex pixels), depth: 0 at the pial surface to 1 at white matter.
    """
    from scipy.ndimage import gaussian_filter

    h, w = pid.shape
    layer = np.zeros((h, w), np.int8)
    cum = tables["cum"][pid]  # (h, w, 5)
    layer[:] = (depth[..., None] > cum).sum(axis=-1)
    dens = np.where(cortex, tables["density"][pid, layer], 0.0)
    size = np.where(cortex, tables["size_class"][pid, layer], 0)
    neuropil = np.where(cortex, tables["neuropil"][pid, layer], 0.0)
    dens = np.where(white, WHITE.density[0], dens)
    neuropil = np.where(white, WHITE.neuropil[0], neuropil)
    cells = rng.random((h, w)) < dens
    dark = np.zeros((h, w), np.float32)
    for k, sigma in enumerate(SIZE_SIGMAS_PX):
        pts = (cells & (size == k)).astype(np.float32)
        if pts.any():
            dark += gaussian_filter(pts, sigma) * (2 * np.pi * sigma**2) * 150.0
    img = 238.0 - neuropil - np.minimum(dark, 200.0) + rng.normal(0, 4.0, (h, w))
    img = gain * img + offset
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
