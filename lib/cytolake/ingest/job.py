"""The ingest job: areas and pmaps from the atlas, then every brain's sections from its manifest.

Incremental and idempotent: the atlas is registered again only when its files change; a section
row is written only when something about it changed; a run over unchanged input commits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path


from cytolake.atlas.pmaps import Atlas
from cytolake.atlas.registered import atlas_matches
from cytolake.io.files import content_hash, signature
from cytolake.config import Settings
from cytolake.ingest.sections import Checks, changed, inspect_section
from cytolake.io.manifest import Entry, ManifestError, find_manifest, read_manifest
from cytolake.io.warps import WarpError, warp_hash
from cytolake.lake import Lake
from cytolake.schemas import schema

BRAIN_COMPARED = ["status", "error", "manifest_uri", "manifest_hash", "n_sections", "n_ok", "n_error"]


@dataclass
class IngestSummary:
    atlas_registered: bool = False
    brains: dict[str, dict] = field(default_factory=dict)  # brain_id -> {status, error, n_ok, n_error, changed}
    versions: dict[str, int | None] = field(default_factory=dict)

    @property
    def failed_sections(self) -> int:
        return sum(b["n_error"] for b in self.brains.values())

    @property
    def failed_brains(self) -> int:
        return sum(b["status"] == "error" for b in self.brains.values())


def placement_checks(settings: Settings, atlas: Atlas) -> Checks:
    """The section checks' parameters: the reference volume's extent and the configured tolerances."""
    lo, hi = atlas.bounds_mm()
    return Checks(tuple(lo), tuple(hi), settings.ingest.outside_tolerance_mm, settings.ingest.spacing_tolerance,
                  settings.ingest.affine_scale_tolerance)


def register_atlas(lake: Lake, atlas: Atlas) -> bool:
    """Write `pmaps` then `areas` (whose atlas_hash marks a complete registration); False when already current."""
    if lake.exists("pmaps") and atlas_matches(lake.read("areas", ["atlas_hash"]).to_pylist(), atlas):
        return False
    lake.write_batches("pmaps", atlas.sparse_batches(schema("pmaps").arrow()), mode="overwrite")
    lake.write_arrow("areas", atlas.areas_table(schema("areas").arrow()), mode="overwrite")
    return True


def discover_brains(landing: Path, only: list[str] | None) -> dict[str, Path]:
    """brain_id -> manifest path for every brain folder in landing that has a manifest."""
    if not landing.is_dir():
        raise FileNotFoundError(f"landing folder {landing} does not exist")
    found = {d.name: m for d in sorted(landing.iterdir()) if d.is_dir() and (m := find_manifest(d))}
    if only:
        missing = sorted(set(only) - set(found))
        if missing:
            raise FileNotFoundError(f"no manifest for brains {missing} under {landing}")
        found = {b: found[b] for b in only}
    return found


def _unchanged_on_disk(entries: list[Entry], prev: dict[int, dict]) -> bool:
    """True when every section is registered ok, its file's size and mtime are as recorded, and the brain's
    warp is the one recorded (by content: a warp replaced under the same name counts as changed)."""
    for e in entries:
        p = prev.get(e.section_id)
        if p is None or p["status"] != "ok" or e.error or e.image is None:
            return False
        try:
            sig = signature(e.image)
        except OSError:
            return False
        if sig != (p["file_size"], p["file_mtime_ns"]):
            return False
        if p.get("warp_uri") != (str(e.warp) if e.warp else None):
            return False
        try:
            if e.warp and warp_hash(e.warp) != p.get("warp_hash"):
                return False
        except WarpError:
            return False
    return True


def run_ingest(settings: Settings, spark, brains: list[str] | None = None, log=print) -> IngestSummary:
    lake = Lake(settings.paths.lake)
    landing = Path(settings.paths.landing)
    summary = IngestSummary()
    atlas = Atlas(settings.atlas)
    log(f"atlas {atlas.name}: {len(atlas.areas)} areas from {atlas.maps_path}")
    summary.atlas_registered = register_atlas(lake, atlas)
    log("  registered areas and pmaps" if summary.atlas_registered else "  areas and pmaps already current")
    checks = placement_checks(settings, atlas)

    prev_sections: dict[tuple[str, int], dict] = {(r["brain_id"], r["section_id"]): r for r in lake.read("sections").to_pylist()}
    prev_brains = {r["brain_id"]: r for r in lake.read("brains").to_pylist()}
    now = datetime.now(timezone.utc)
    manifests = discover_brains(landing, brains)
    log(f"landing {landing}: {len(manifests)} brains with a manifest")

    brain_rows: dict[str, dict] = {}
    todo: list[tuple[Entry, dict | None]] = []
    removed: list[dict] = []  # keys of sections no longer in their brain's manifest
    for brain_id, mpath in manifests.items():
        base = {"brain_id": brain_id, "manifest_uri": str(mpath.resolve()), "ingested_at": now}
        try:
            mhash = content_hash(mpath)
            entries = read_manifest(mpath, landing)
        except (ManifestError, OSError) as e:  # this brain's error; its registered sections stay as they were
            brain_rows[brain_id] = {**base, "status": "error", "error": str(e), "manifest_hash": None,
                                    "n_sections": 0, "n_ok": 0, "n_error": 0}
            continue
        prev = {sid: r for (b, sid), r in prev_sections.items() if b == brain_id}
        listed = {e.section_id for e in entries}
        removed += [{"brain_id": brain_id, "section_id": sid} for sid in sorted(set(prev) - listed)]
        pb = prev_brains.get(brain_id)
        brain_rows[brain_id] = {**base, "status": "ok", "error": None, "manifest_hash": mhash,
                                "n_sections": len(entries)}
        if pb and pb["manifest_hash"] == mhash and pb["status"] == "ok" and _unchanged_on_disk(entries, prev):
            brain_rows[brain_id].update(n_ok=pb["n_ok"], n_error=pb["n_error"])
            continue
        todo += [(e, prev.get(e.section_id)) for e in entries]

    rows: list[dict] = []
    if todo:
        log(f"inspecting {len(todo)} sections on Spark")
        sc = spark.sparkContext
        rows = (sc.parallelize(todo, numSlices=min(len(todo), max(sc.defaultParallelism * 4, 1)))
                .map(lambda t: inspect_section(t[0], t[1], checks, now)).collect())
    new_rows = [r for r in rows if changed(r, prev_sections.get((r["brain_id"], r["section_id"])))]
    if new_rows or removed:
        # One commit: changed sections upserted, sections gone from their manifest deleted (tiling then drops
        # their patches, and the later stages what was built from them).
        summary.versions["sections"] = lake.merge("sections", schema("sections").table(new_rows), delete=removed)

    by_brain: dict[str, list[dict]] = {}
    for r in rows:
        by_brain.setdefault(r["brain_id"], []).append(r)
    for brain_id, brs in by_brain.items():
        b = brain_rows[brain_id]
        b["n_ok"] = sum(r["status"] == "ok" for r in brs)
        b["n_error"] = len(brs) - b["n_ok"]
    changed_brains = [b for b in brain_rows.values()
                      if (pb := prev_brains.get(b["brain_id"])) is None or any(b[k] != pb[k] for k in BRAIN_COMPARED)]
    if changed_brains:
        summary.versions["brains"] = lake.merge("brains", schema("brains").table(changed_brains))

    changed_sections = {r["brain_id"] for r in new_rows} | {r["brain_id"] for r in removed}
    for brain_id, b in brain_rows.items():
        summary.brains[brain_id] = {"status": b["status"], "error": b["error"], "n_ok": b.get("n_ok", 0),
                                    "n_error": b.get("n_error", 0), "changed": brain_id in changed_sections}
    for r in rows:
        if r["status"] == "error":
            log(f"  section {r['brain_id']}/{r['section_id']}: {r['error']}")
    for r in removed:
        log(f"  section {r['brain_id']}/{r['section_id']}: no longer in the manifest, removed")
    return summary


