"""The synthesize job: write N synthetic brains into the landing folder."""

from __future__ import annotations

import os
from pathlib import Path

from tqdm import tqdm

from cytolake.atlas.pmaps import Atlas
from cytolake.config import Settings
from cytolake.synth.brains import atlas_support, load_anatomy, synthesize_brain


def run_synthesize(settings: Settings, n_brains: int | None = None, workers: int | None = None, log=print) -> list[tuple[str, bool]]:
    """Write (or keep, when identical ones exist) the brains; returns [(brain_id, written)]."""
    synth = settings.synth
    n = n_brains or synth.brains
    landing = Path(settings.paths.landing)
    landing.mkdir(parents=True, exist_ok=True)
    atlas = Atlas(settings.atlas)
    log(f"synthesizing {n} brains x {synth.sections_per_brain} sections at {synth.spacing_um:g} um/px into {landing}")
    support, anatomy = atlas_support(atlas), load_anatomy()
    workers = workers or min(os.cpu_count() or 1, synth.sections_per_brain)
    out = []
    with tqdm(total=n * synth.sections_per_brain, unit="section", desc="synthesize") as bar:
        for i in range(n):
            brain_id, written = synthesize_brain(i, synth, atlas, support, anatomy, landing, workers,
                                                 progress=lambda b, k: bar.update(1))
            if not written:
                bar.update(synth.sections_per_brain)
            out.append((brain_id, written))
    for brain_id, written in out:
        log(f"  {brain_id}: {'written' if written else 'unchanged, kept'} -> {landing / brain_id}")
    return out
