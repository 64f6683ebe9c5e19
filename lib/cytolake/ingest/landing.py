"""A landing folder checked before ingest, and a manifest template written from a folder of images.

`check_landing` runs ingest's own rules (`read_manifest`, `inspect_section`, the placement checks)
on the driver, without Spark and without opening the lake: what it reports is exactly what ingest
would reject, found before anything is written.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cytolake.atlas.pmaps import Atlas
from cytolake.config import BRAIN_ID_PATTERN, Settings
from cytolake.ingest.sections import inspect_section
from cytolake.io.images import ImageError, read_info
from cytolake.io.manifest import AFFINE_COLUMNS, REQUIRED, WARP_COLUMNS, ManifestError, find_manifest, read_manifest

IMAGE_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".svs")
SKIPPED_FOLDERS = ("annotations", "truth")  # label images and scoring files that sit next to the sections


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        msg = self.message
        for prefix in (f"{self.file}: ", f"{self.file}:"):
            if msg.startswith(prefix):
                msg = msg[len(prefix):]
        return f"{where}: {msg}"


def _line_of(message: str) -> int | None:
    m = re.search(r"\bline (\d+)\b", message)
    return int(m.group(1)) if m else None


def check_landing(settings: Settings, brains: list[str] | None = None) -> tuple[list[Problem], int]:
    """(problems, sections checked) of the landing folder, or of the named brains in it."""
    from cytolake.ingest.job import placement_checks

    landing = Path(settings.paths.landing)
    if not landing.is_dir():
        return [Problem(str(landing), None, "landing folder does not exist")], 0
    folders = sorted(d for d in landing.iterdir() if d.is_dir() and not d.name.startswith("."))
    if brains:
        missing = sorted(set(brains) - {d.name for d in folders})
        folders = [d for d in folders if d.name in brains]
    problems = [Problem(str(landing / b), None, "no such brain folder") for b in (missing if brains else [])]
    checks = placement_checks(settings, Atlas(settings.atlas))
    n = 0
    for folder in folders:
        manifest = find_manifest(folder)
        if manifest is None:
            problems.append(Problem(str(folder), None, "no manifest.csv or manifest.json (cytolake landing init "
                                                       "writes a template)"))
            continue
        try:
            entries = read_manifest(manifest, landing)
        except ManifestError as e:
            problems.append(Problem(str(manifest), _line_of(str(e)), str(e)))
            continue
        seen: set[str] = set()
        for e in entries:
            n += 1
            row = inspect_section(e, None, checks, hash_content=False)
            if row["status"] == "ok":
                continue
            msg = row["error"]
            if msg.startswith("warp:") or "warp_path:" in msg:  # the brain's warp: said once, not per section
                key = msg.split("warp", 1)[1]
                if key in seen:
                    continue
                seen.add(key)
            elif not msg.startswith(str(manifest)):
                msg = f"section {e.section_id}: {msg}"
            problems.append(Problem(str(manifest), e.line, msg))
    return problems, n


def _images(folder: Path, pattern: str | None) -> list[Path]:
    if pattern:
        found = [p for p in folder.glob(pattern) if p.is_file() or p.suffix == ".zarr"]
    else:
        found = [p for p in folder.rglob("*")
                 if (p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES)) or (p.is_dir() and p.suffix == ".zarr")]
        found = [p for p in found if not any(part in SKIPPED_FOLDERS for part in p.relative_to(folder).parts[:-1])]
    # nothing inside an OME-Zarr folder is an image of its own
    zarrs = [p for p in found if p.suffix == ".zarr"]
    return sorted(p for p in found if not any(z in p.parents for z in zarrs))


def _section_ids(paths: list[Path]) -> list[int]:
    """The trailing number of each file name when those are distinct, else 1..n in name order."""
    nums = [re.findall(r"(\d+)", p.name.split(".")[0]) for p in paths]
    ids = [int(m[-1]) if m else None for m in nums]
    if None not in ids and len(set(ids)) == len(ids):
        return ids
    return list(range(1, len(paths) + 1))


def init_manifest(folder: Path, pattern: str | None = None, force: bool = False) -> tuple[Path, list[str]]:
    """Write `folder/manifest.csv` for the images under it: section ids, relative image paths and the
    spacing from each header; the affine cells (and warp_path, annotation_path) are left empty to fill.
    Returns the manifest's path and notes on what still needs filling."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    if not BRAIN_ID_PATTERN.match(folder.name):
        raise ValueError(f"{folder}: the folder name is the brain id and must be letters, digits, _ and - "
                         "(at most 64, starting with a letter or digit)")
    existing = find_manifest(folder)
    if existing and not force:
        raise ValueError(f"{existing}: a manifest is already there (--force replaces it)")
    images = _images(folder, pattern)
    if not images:
        raise ValueError(f"{folder}: no images found ({', '.join(IMAGE_SUFFIXES)} files or .zarr folders"
                         f"{', outside ' + '/'.join(SKIPPED_FOLDERS) if not pattern else ' matching ' + pattern})")
    notes = []
    rows = []
    for sid, p in zip(_section_ids(images), images):
        rel = p.relative_to(folder).as_posix()
        try:
            spacing = read_info(p).spacing_um
        except ImageError as e:
            spacing, notes = None, notes + [str(e)]
        if spacing is None:
            notes.append(f"{rel}: no spacing in the header; fill spacing_um")
        rows.append([folder.name, sid, rel, "" if spacing is None else f"{spacing:.10g}", *([""] * 16), "", "", ""])
    path = folder / "manifest.csv"
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*REQUIRED, "annotation_path", *WARP_COLUMNS])
        w.writerows(sorted(rows, key=lambda r: r[1]))
    os.replace(tmp, path)
    notes.append(f"fill {AFFINE_COLUMNS[0]}..{AFFINE_COLUMNS[-1]} (pixel -> MNI mm, or -> the brain's own space with "
                 f"warp_path), then run: cytolake landing check {folder.name}")
    return path, notes
