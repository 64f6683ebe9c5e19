"""The ingest job: areas and pmaps from the atlas, then every brain's sections from its manifest.

Read state (the lake's registry, the landing folder: ingest/scan.py) -> `plan_ingest` (ingest/plan.py) ->
inspection on Spark (ingest/compute.py) -> one commit per table of the rows that changed.

Incremental and idempotent: the atlas is registered again only when its files change; a section
row is written only when something about it changed; a run over unchanged input commits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path


import pyarrow.compute as pc

from cytolake.atlas.pmaps import Atlas
from cytolake.atlas.registered import atlas_matches
from cytolake.config import Settings
from cytolake.ingest.compute import inspected
from cytolake.ingest.plan import changed_brains, changed_sections, counted_brains, plan_ingest
from cytolake.ingest.scan import scan_landing
from cytolake.ingest.sections import Checks
from cytolake.io.manifest import find_manifest
from cytolake.lake import Lake
from cytolake.schemas import schema


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


def register_atlas(lake: Lake, atlas: Atlas) -> list[str]:
    """Write `pmaps` then `areas` (whose atlas_hash marks a complete registration); the tables written, none
    when both are current. An `areas` table of this atlas written before a column was added to its schema (a
    lake from before `label`) is written again alone: its pmaps are current, and the overwrite commits the
    table's new schema."""
    registered = lake.exists("pmaps") and atlas_matches(lake.read("areas", ["atlas_hash"]).to_pylist(), atlas)
    if registered and not lake.missing_columns("areas"):
        return []
    if not registered:
        lake.write_batches("pmaps", atlas.sparse_batches(schema("pmaps").arrow()), mode="overwrite")
    lake.write_arrow("areas", atlas.areas_table(schema("areas").arrow()), mode="overwrite")
    return ["areas"] if registered else ["pmaps", "areas"]


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


def run_ingest(settings: Settings, spark, brains: list[str] | None = None, log=print) -> IngestSummary:
    lake = Lake(settings.paths.lake)
    landing = Path(settings.paths.landing)
    summary = IngestSummary()
    atlas = Atlas(settings.atlas)
    log(f"atlas {atlas.name}: {len(atlas.areas)} areas from {atlas.maps_path}")
    written = register_atlas(lake, atlas)
    summary.atlas_registered = bool(written)
    log(f"  registered {' and '.join(written)}" if written else "  areas and pmaps already current")
    registered, registered_brains = lake.read("sections"), lake.read("brains")
    now = datetime.now(timezone.utc)
    manifests = discover_brains(landing, brains)
    log(f"landing {landing}: {len(manifests)} brains with a manifest")
    plan = plan_ingest(registered, registered_brains, *scan_landing(manifests, landing, now))
    if plan.inspect.num_rows:
        log(f"inspecting {plan.inspect.num_rows} sections on Spark")
    rows = inspected(spark, plan.inspect, registered, placement_checks(settings, atlas), now)
    new_rows = changed_sections(rows, registered)
    if new_rows.num_rows or plan.removed.num_rows:
        # One commit: changed sections upserted, sections gone from their manifest deleted (tiling then drops
        # their patches, and the later stages what was built from them).
        summary.versions["sections"] = lake.merge("sections", new_rows, delete=plan.removed.to_pylist())
    brain_rows = counted_brains(plan.brains, rows)
    if (changed := changed_brains(brain_rows, registered_brains)).num_rows:
        summary.versions["brains"] = lake.merge("brains", changed)
    touched = set(new_rows["brain_id"].to_pylist()) | set(plan.removed["brain_id"].to_pylist())
    for b in brain_rows.to_pylist():  # one row per brain: the summary and the log
        summary.brains[b["brain_id"]] = {k: b[k] for k in ("status", "error", "n_ok", "n_error")} | {
            "changed": b["brain_id"] in touched}
    for r in rows.filter(pc.equal(rows["status"], "error")).select(["brain_id", "section_id", "error"]).to_pylist():
        log(f"  section {r['brain_id']}/{r['section_id']}: {r['error']}")
    for r in plan.removed.to_pylist():
        log(f"  section {r['brain_id']}/{r['section_id']}: no longer in the manifest, removed")
    return summary
