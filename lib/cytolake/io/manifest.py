"""Brain manifests (CSV or JSON): one entry per section with its image, spacing and section -> MNI affine."""

from __future__ import annotations

import csv
import difflib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from cytolake.config import BRAIN_ID_PATTERN

AFFINE_COLUMNS = [f"a{r}{c}" for r in range(4) for c in range(4)]
REQUIRED = ["brain_id", "section_id", "image_path", "spacing_um", *AFFINE_COLUMNS]
# Optional, per brain (every row the same, or empty): the brain-space -> MNI transform (see io/warps.py).
WARP_COLUMNS = ["warp_path", "warp_format"]


def empty_cells(blank: list[str]) -> str:
    """The affine cells left empty, every one named: "all 16 (a00..a33)" or "a03, a13, a23"."""
    if blank == AFFINE_COLUMNS:
        return f"all 16 ({AFFINE_COLUMNS[0]}..{AFFINE_COLUMNS[-1]})"
    return ", ".join(blank)


class ManifestError(ValueError):
    """A manifest that cannot be read at all; the message names the file and the problem."""


@dataclass(frozen=True)
class Entry:
    """One manifest row. `error` is set when the row itself is bad; the rest of the manifest still counts."""

    brain_id: str
    section_id: int
    image: Path | None
    spacing_um: float | None
    transform: list[float] | None
    annotation: Path | None
    error: str | None = None
    raw_image_path: str = ""
    warp: Path | None = None  # the brain's transform from its own space to MNI; the affine then maps into brain space
    warp_format: str | None = None
    line: int | None = None  # line of the manifest the entry starts on (CSV), for messages


def write_manifest(path: Path, sections: list[dict]) -> None:
    """Write a manifest CSV (the format `read_manifest` reads), atomically: under a temporary name, then renamed,
    so a reader never sees a half-written manifest. Each section: brain_id, section_id, image_path,
    spacing_um, transform (16 numbers or a 4x4 array, row-major) and optionally annotation_path, warp_path
    and warp_format (the columns are written when any section has a warp)."""
    tmp = path.with_name(path.name + ".part")
    warped = any(sec.get("warp_path") for sec in sections)
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*REQUIRED, "annotation_path", *(WARP_COLUMNS if warped else [])])
        for sec in sorted(sections, key=lambda x: int(x["section_id"])):
            affine = [float(v) for v in (sec["transform"].ravel() if hasattr(sec["transform"], "ravel") else sec["transform"])]
            if len(affine) != 16:
                raise ValueError(f"section {sec['section_id']}: transform needs 16 numbers, got {len(affine)}")
            w.writerow([sec["brain_id"], sec["section_id"], sec["image_path"], sec["spacing_um"],
                        *(f"{v:.10g}" for v in affine), sec.get("annotation_path") or "",
                        *([sec.get("warp_path") or "", sec.get("warp_format") or ""] if warped else [])])
    os.replace(tmp, path)


def find_manifest(brain_dir: Path) -> Path | None:
    for name in ("manifest.csv", "manifest.json"):
        if (brain_dir / name).is_file():
            return brain_dir / name
    return None


def confined(landing: Path, brain_dir: Path, rel: str) -> Path:
    """The absolute path of `rel` (relative to the brain folder), refused if it escapes the landing folder."""
    if not rel:
        raise ValueError("empty path")
    p = Path(rel)
    full = (p if p.is_absolute() else brain_dir / p).resolve()
    root = landing.resolve()
    if not full.is_relative_to(root):
        raise ValueError(f"path {rel!r} escapes the landing folder {root}")
    return full


_LINE = "\0line"  # where _rows records a CSV row's line number


def _json_rows(path: Path) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    rows = data["sections"] if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ManifestError(f"{path}: expected a list of section objects (or {{'sections': [...]}})")
    out = []
    for n, r in enumerate(rows, start=1):
        if "transform" in r:
            t = r["transform"]
            if not isinstance(t, list) or len(t) != 16:
                # a row error, named: a string would be taken character by character, a 17th number dropped
                what = f"a list of {len(t)} items" if isinstance(t, list) else f"a {type(t).__name__}"
                r = {**r, "_transform_error": f"transform must be a list of 16 numbers, got {what}"}
            else:
                r = {**r, **{f"a{i // 4}{i % 4}": v for i, v in enumerate(t)}}
        out.append(r)
    return out


def _csv_rows(path: Path) -> list[dict]:
    # utf-8-sig: a spreadsheet's byte-order mark is not part of the first header
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, strict=True)
        found = reader.fieldnames or []
        reader.fieldnames = [h.strip() for h in found]
        missing = [c for c in REQUIRED if c not in reader.fieldnames]
        if missing:
            near = {c: m[0] for c in missing
                    if (m := difflib.get_close_matches(c, [h for h in found if h.strip() not in REQUIRED], 1, 0.6))}
            hint = "".join(f"; header {near[c]!r} is not {c!r}" for c in near)
            raise ManifestError(f"{path}: missing columns {missing}{hint} (headers: {found})")
        rows = []
        start = reader.line_num + 1
        try:
            for r in reader:
                if None in r or any(v is None for v in r.values()):
                    raise ManifestError(f"{path}: line {reader.line_num}: wrong number of fields")
                rows.append({**r, _LINE: start})
                start = reader.line_num + 1
        except csv.Error as e:  # e.g. a quote never closed: the row that starts at `start`
            raise ManifestError(f"{path}: line {start}: malformed manifest (csv.Error: {e})") from None
        return rows


def _named_warp(r: dict) -> tuple[str, str]:
    return str(r.get("warp_path") or ""), str(r.get("warp_format") or "")


def _warp(rows: list[dict], path: Path, landing: Path) -> tuple[Path | None, str | None, str | None]:
    """The brain's warp (path, format, error). Every row must name the same warp, or none; a path
    escaping the landing folder is an error of every section, like an image's."""
    first = _named_warp(rows[0]) if rows else ("", "")
    for n, r in enumerate(rows, start=1):
        if _named_warp(r) != first:
            where = f"line {r[_LINE]}" if _LINE in r else f"row {n}"
            raise ManifestError(f"{path}: {where}: warp_path/warp_format {_named_warp(r)} differ from the first "
                                f"row's {first} (one warp per brain)")
    raw, fmt = first
    if not raw:
        return None, None, None
    try:
        return confined(landing, path.parent, raw), fmt or None, None
    except ValueError as e:
        return None, fmt or None, f"warp_path: {e}"


def _rows(path: Path) -> list[dict]:
    try:
        return _json_rows(path) if path.suffix == ".json" else _csv_rows(path)
    except ManifestError:
        raise
    except RecursionError:
        raise ManifestError(f"{path}: malformed manifest (nested too deeply to read)") from None
    except (OSError, UnicodeDecodeError, csv.Error, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"{path}: malformed manifest ({type(e).__name__}: {e})") from None


def _section_id(v) -> int:
    """An integer section id: an int, or text of one (CSV); never a bool, a fraction or a float."""
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ValueError
    if isinstance(v, str):
        v = v.strip()
        if not v.lstrip("+-").isdigit():
            raise ValueError
    return int(v)


def read_manifest(path: Path, landing: Path) -> list[Entry]:
    """Entries of a manifest. The file as a whole must parse; a bad row becomes an Entry with `error`."""
    brain_dir = path.parent
    expected = brain_dir.name
    entries: list[Entry] = []
    seen: set[int] = set()
    rows = _rows(path)
    warp, warp_format, warp_error = _warp(rows, path, landing)
    for n, r in enumerate(rows, start=2):
        line = r.pop(_LINE, None)
        where = f"{path}: row {n - 1}" + (f" (line {line})" if line else "")
        try:
            section_id = _section_id(r["section_id"])
        except (KeyError, TypeError, ValueError):
            raise ManifestError(f"{where}: section_id {r.get('section_id')!r} is not an integer") from None
        if section_id in seen:
            raise ManifestError(f"{where}: section_id {section_id} listed twice")
        seen.add(section_id)
        brain_id = str(r.get("brain_id", ""))
        if brain_id != expected or not BRAIN_ID_PATTERN.match(brain_id):
            raise ManifestError(f"{where}: brain_id {brain_id!r} must equal the folder name {expected!r} "
                                "(letters, digits, _ and -)")
        raw = str(r.get("image_path", ""))
        try:
            image = confined(landing, brain_dir, raw)
            ann_raw = str(r.get("annotation_path") or "")
            annotation = confined(landing, brain_dir, ann_raw) if ann_raw else None
            if r.get("_transform_error"):
                raise ValueError(r["_transform_error"])
            if warp_error:
                raise ValueError(warp_error)
            blank = [c for c in AFFINE_COLUMNS if str(r.get(c, "")).strip() == ""]
            if blank:
                raise ValueError(f"affine not filled in (empty: {empty_cells(blank)})")
            spacing = float(r["spacing_um"])
            if not math.isfinite(spacing) or spacing <= 0:
                raise ValueError(f"spacing_um {r['spacing_um']!r} must be a positive number")
            if any(isinstance(r[c], bool) for c in AFFINE_COLUMNS):
                raise ValueError("affine values must be numbers, got true/false")
            transform = [float(r[c]) for c in AFFINE_COLUMNS]
            if not all(math.isfinite(v) for v in transform):
                raise ValueError("affine has non-finite values")
            entries.append(Entry(brain_id, section_id, image, spacing, transform, annotation, None, raw,
                                 warp, warp_format, line))
        except (KeyError, TypeError, ValueError) as e:
            entries.append(Entry(brain_id, section_id, None, None, None, None, f"{where}: {e}", raw, line=line))
    if not entries:
        raise ManifestError(f"{path}: no sections listed")
    return entries
