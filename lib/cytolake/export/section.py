"""One section's predicted areas over its own image, at a resolution one can read (`cytolake section-map`).

The image is the finest pyramid level of the section that is at most `max_px` wide (read by window, as tiling
reads it); every graph node on the section is a dot at its image location in its predicted area's colour (the
colours of the exported label tables, so the PNG matches the NIfTI / GIfTI / HTML maps), with a legend naming
each area shown. Where the section is annotated, a second panel shows the annotation's labels at the same
nodes. The predictions are those `cytolake export` maps: the `export.gnn` run on the model's current graphs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cytolake.atlas.registered import area_labels
from cytolake.config import Settings
from cytolake.export.labels import table
from cytolake.export.plan import ExportError
from cytolake.io.images import LevelReader, read_info
from cytolake.io.pyramid import finest_level_within
from cytolake.lake import Lake


def section_image(uri: str, max_px: int) -> tuple[np.ndarray, float]:
    """(the finest level at most `max_px` wide, level-0 pixels per pixel of it)."""
    info = read_info(uri)
    level = finest_level_within(info.level_shapes, max_px)
    with LevelReader(uri, level) as r:
        img = r.window(0, 0, *r.shape)
    return img, info.width / info.level_shapes[level][1]


def _panel(ax, img, x, y, values, rows, title: str) -> list:
    """The image with a dot per node in its area's colour; the legend handles of the areas shown."""
    from matplotlib.lines import Line2D

    ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    colour = {v - 1: np.array(rgb) / 255 for v, _, rgb in rows if v}
    name = {v - 1: n for v, n, _ in rows if v}
    handles = []
    for a in np.unique(values[values >= 0]):
        on = values == a
        ax.scatter(x[on], y[on], color=colour[int(a)], s=14, edgecolors="black", linewidths=0.3)
        handles.append(Line2D([], [], marker="o", linestyle="", color=colour[int(a)], markeredgecolor="black",
                              label=f"{int(a) + 1} {name[int(a)]} ({int(on.sum())})"))
    ax.set_title(title)
    ax.axis("off")
    return handles


def section_map(settings: Settings, brain: str, section: int, model: str | None = None, out: Path | None = None,
                max_px: int = 2000, log=print) -> Path:
    """Write the PNG of `brain`'s section `section` (default path: paths.reports/maps-<run>/<brain>_section_<n>.png)
    and return its path; ExportError naming what is missing (no such section, no nodes on it, no predictions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cytolake.export.job import _predictions
    from cytolake.gnn.data import load_graphs
    from cytolake.gnn.job import run_id

    lake = Lake(settings.paths.lake)
    model = model or settings.train.model_version
    rows = [r for r in lake.read("sections", ["brain_id", "section_id", "image_uri"]).to_pylist()
            if r["brain_id"] == brain and r["section_id"] == section]
    if not rows:
        raise ExportError(f"no section {section} of brain {brain} in {lake.path('sections')}")
    # every brain: the run id is over all of the model's graphs
    gs = load_graphs(lake, model, merge_hemispheres=settings.atlas.merge_hemispheres)
    rid = run_id(gs, settings.export.gnn, settings)
    predicted = _predictions(lake, rid, gs)
    on = (gs.brain == brain) & (gs.section == section)
    if not on.any():
        have = sorted({int(s) for s in gs.section[gs.brain == brain]})
        raise ExportError(f"no graph nodes of model {model} on {brain} section {section} (sections with nodes: "
                          f"{', '.join(map(str, have)) or 'none'})")
    img, scale = section_image(rows[0]["image_uri"], max_px)
    x, y = gs.x[on] / scale, gs.y[on] / scale
    area_rows = table(area_labels(lake))
    truth = gs.area_label[on]  # areas, as the predictions are stored
    panels = [("predicted", predicted[on])] + ([("annotation", truth)] if (truth >= 0).any() else [])
    h, w = img.shape[:2]
    dpi = 100
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * w / dpi + 4, h / dpi + 1), dpi=dpi, squeeze=False)
    handles = {}
    for ax, (what, values) in zip(axes[0], panels):
        for hd in _panel(ax, img, x, y, values, area_rows, f"{what}: {brain} section {section}"):
            handles.setdefault(hd.get_label().split(" (")[0], hd)
    fig.suptitle(f"{settings.export.gnn} run {rid} on {model}: {int(on.sum())} nodes; image level "
                 f"{w}x{h} px ({scale:g} level-0 px each)", fontsize=9)
    fig.legend(handles=list(handles.values()), loc="center right", fontsize=7, title="area (value name, nodes)",
               title_fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.01, right=1 - 3.8 / fig.get_figwidth(), top=0.9, bottom=0.01, wspace=0.02)
    out = Path(out or Path(settings.paths.reports) / f"maps-{rid}" / f"{brain}_section_{section}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    log(f"section map: {out}")
    return out
