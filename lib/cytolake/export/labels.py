"""Label tables: value 0 is `Unknown`, value i + 1 is label i (an area_index, or a cluster). The same
colours go into every format, so a map looks the same in FSLeyes, Freeview and the HTML view."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np


def colours(n: int) -> np.ndarray:
    """(n, 3) uint8 RGB for labels 0..n-1: evenly spaced hues in a fixed shuffled order, so neighbours differ."""
    import matplotlib

    hues = np.random.default_rng(0).permutation(n) / max(n, 1)
    rgb = matplotlib.colormaps["hsv"](hues)[:, :3]
    return np.rint(rgb * 255).astype(np.uint8)


def table(names: list[str]) -> list[tuple[int, str, tuple[int, int, int]]]:
    """(value, name, rgb) rows: 0 Unknown, then each name at its index + 1."""
    rgb = colours(len(names))
    return [(0, "Unknown", (0, 0, 0))] + [(i + 1, n, tuple(int(c) for c in rgb[i])) for i, n in enumerate(names)]


def _token(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip()) or "unnamed"


def write_freesurfer_lut(path: Path, rows) -> Path:
    """FreeSurfer colour table (`FreeSurferColorLUT.txt` layout: `value name R G B A`, A = 0 opaque)."""
    lines = ["#No. Label Name                                  R   G   B   A"]
    lines += [f"{v:<4d} {_token(n):<44s} {r:3d} {g:3d} {b:3d}   0" for v, n, (r, g, b) in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_fsl_lut(path: Path, rows) -> Path:
    """FSLeyes lookup table (`.lut`: `value R G B name`, colours in 0..1); value 0 is left out (background)."""
    lines = [f"{v} {r / 255:.5f} {g / 255:.5f} {b / 255:.5f} {n}" for v, n, (r, g, b) in rows if v]
    path.write_text("\n".join(lines) + "\n")
    return path


def gifti_label_table(rows):
    import nibabel as nib

    lt = nib.gifti.GiftiLabelTable()
    for v, n, (r, g, b) in rows:
        lab = nib.gifti.GiftiLabel(key=v, red=r / 255, green=g / 255, blue=b / 255, alpha=0.0 if v == 0 else 1.0)
        lab.label = n
        lt.labels.append(lab)
    return lt
