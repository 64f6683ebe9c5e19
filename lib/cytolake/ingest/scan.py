"""The landing folder as Arrow tables: a `brains` row per manifest, and per manifest entry the entry itself and
what is on disk now (file size and mtime, the warp's content hash), which is what `plan_ingest` compares."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa

from cytolake.io.files import content_hash, signature
from cytolake.io.manifest import Entry, ManifestError, read_manifest
from cytolake.io.warps import WarpError, warp_hash
from cytolake.schemas import schema

ENTRY = pa.schema([("brain_id", pa.string()), ("section_id", pa.int32()), ("image", pa.string()),
                   ("spacing_um", pa.float64()), ("transform", pa.list_(pa.float64())), ("annotation", pa.string()),
                   ("error", pa.string()), ("raw_image_path", pa.string()), ("warp", pa.string()),
                   ("warp_format", pa.string()), ("line", pa.int64())])
ON_DISK = pa.schema([("status", pa.string()), ("file_size", pa.int64()), ("file_mtime_ns", pa.int64()),
                     ("warp_uri", pa.string()), ("warp_hash", pa.string())])
LANDED = pa.schema([*ENTRY, *ON_DISK])


def _path(p: str | None) -> Path | None:
    return Path(p) if p is not None else None


def entry(row: dict) -> Entry:
    """The manifest entry of a `LANDED` row."""
    return Entry(**{f: row[f] for f in ENTRY.names if f not in ("image", "annotation", "warp")},
                 image=_path(row["image"]), annotation=_path(row["annotation"]), warp=_path(row["warp"]))


def _on_disk(e: Entry) -> dict:
    row = {"status": "error" if e.error or e.image is None else "ok", "file_size": None, "file_mtime_ns": None,
           "warp_uri": str(e.warp) if e.warp else None, "warp_hash": None}
    if row["status"] == "ok":
        try:
            row["file_size"], row["file_mtime_ns"] = signature(e.image)
        except OSError:
            row["status"] = "error"
    if e.warp:
        try:
            row["warp_hash"] = warp_hash(e.warp)  # cached per file version: once per brain
        except WarpError:
            pass
    return row


def scan_landing(manifests: dict[str, Path], landing: Path, now: datetime) -> tuple[pa.Table, pa.Table]:
    """(landed, brains): a `LANDED` row per entry of each readable manifest, a `brains` row per manifest
    (n_ok, n_error 0). A manifest that cannot be read is its brain's error; its entries are not listed."""
    brains, landed = [], {n: [] for n in LANDED.names}
    for brain_id, mpath in manifests.items():
        row = {"brain_id": brain_id, "manifest_uri": str(mpath.resolve()), "ingested_at": now, "status": "ok",
               "error": None, "manifest_hash": None, "n_sections": 0, "n_ok": 0, "n_error": 0}
        try:
            row["manifest_hash"] = content_hash(mpath)
            entries = read_manifest(mpath, landing)
        except (ManifestError, OSError) as e:
            brains.append({**row, "status": "error", "error": str(e), "manifest_hash": None})
            continue
        brains.append({**row, "n_sections": len(entries)})
        for e in entries:
            for k, v in {**{f: getattr(e, f) for f in ENTRY.names}, **_on_disk(e)}.items():
                landed[k].append(str(v) if isinstance(v, Path) else v)
    return pa.table(landed, schema=LANDED), schema("brains").table(brains)
