"""A section image without a pyramid: the cortex mask is built band by band, so the memory it takes does not
grow with the image (the whole level 0 was read before: 4.5 GB for a 100k px section); an oversized section
is that section's error. Real single-level tiled BigTIFFs, memory measured in a fresh process."""

import json
import subprocess
import sys

import numpy as np
import tifffile

from conftest import ROOT

PX, TILE, SPACING = 12288, 512, 2.0  # 151 MB at level 0; the mask (320 um) is 96 x 96


def single_level_tiff(path, px=PX):
    """A px x px tiled BigTIFF with no pyramid: bright background, a dark ring of 'cortex'."""
    def tiles():
        for r in range(0, px, TILE):
            for c in range(0, px, TILE):  # whole tiles dark or bright: cheap to write, the same to read
                d = np.hypot(r + TILE / 2 - px / 2, c + TILE / 2 - px / 2) / px
                yield np.full((TILE, TILE), 80 if 0.25 < d < 0.4 else 230, np.uint8)
    res = 1e4 / SPACING
    tifffile.imwrite(path, tiles(), shape=(px, px), dtype=np.uint8, tile=(TILE, TILE), bigtiff=True,
                     compression="zlib", photometric="minisblack", resolution=(res, res), resolutionunit="CENTIMETER")


CHILD = r"""
import json, sys
from pathlib import Path
def status(f):
    return next(int(l.split()[1]) / 1024 for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(f + ":"))
from cytolake.io.images import read_info
from cytolake.tiling.mask import section_cortex_mask
import numpy, scipy.ndimage, skimage.filters, zarr, tifffile
info = read_info(sys.argv[1])
Path("/proc/self/clear_refs").write_text("5")
start = status("VmRSS")
mask, scale = section_cortex_mask(sys.argv[1], 2.0, info.level_shapes, 320.0, None)
print(json.dumps({"grew_mb": status("VmHWM") - start, "shape": list(mask.shape), "scale": scale,
                  "cortex": float(mask.mean())}))
"""


def test_a_single_level_section_mask_takes_bounded_memory(tmp_path):
    path = tmp_path / "flat.tif"
    single_level_tiff(path)
    assert len(tifffile.TiffFile(path).series[0].levels) == 1
    r = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT / "lib"), "PATH": "/usr/bin:/bin"}, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["grew_mb"] < 48, got  # the level is 151 MB (and 4-8x that as floats): far from all of it
    assert got["shape"] == [96, 96] and got["scale"] == 128
    assert 0.2 < got["cortex"] < 0.5  # the ring is found


def test_an_oversized_section_is_that_sections_error(tmp_path):
    from cytolake.config import TilingSettings
    from cytolake.tiling.sections import section_centres

    path = tmp_path / "flat.tif"
    single_level_tiff(path, px=4096)
    t = TilingSettings(max_mask_px=100)  # a 4096 px section at 2 um: a 32 x 32 mask, over 100 px
    sec = {"image_uri": str(path), "spacing_um": SPACING, "brain_id": "B01", "section_id": 1, "annotation_uri": None,
           "content_hash": "x", "transform": [0.002, 0, 0, -4, 0, 0, 0.02, -20, 0, -0.002, 0, 4, 0, 0, 0, 1]}
    rows, err = section_centres(sec, t, "train", np.eye(4), {}, "h")
    assert rows.num_rows == 0 and "flat.tif" in err and "tiling.max_mask_px" in err and "1,024 px" in err
