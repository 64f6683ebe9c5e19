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


def brain_folders(landing: Path, names: list[str]) -> tuple[list[tuple[Path, Path]], list[Problem]]:
    """(brain folder, the folder its manifest's paths must stay inside) for each name: a brain id under the
    landing, else the path of a brain folder. A folder outside the landing is checked as it will be once
    delivered next to the others: its paths may not leave its parent folder. Names found nowhere are problems."""
    found, problems = [], []
    root = landing.resolve() if landing.is_dir() else None
    for name in names:
        as_id = landing / name
        if "/" not in name and as_id.is_dir():
            found.append((as_id, landing))
        elif Path(name).is_dir():
            folder = Path(name).resolve()
            found.append((folder, landing if folder.parent == root else folder.parent))
        elif "/" in name:
            problems.append(Problem(name, None, "no such brain folder"))
        else:
            problems.append(Problem(str(as_id), None, f"no such brain folder (a brain id under {landing}, or the "
                                                      "path of a brain folder)"))
    return found, problems


def check_landing(settings: Settings, brains: list[str] | None = None) -> tuple[list[Problem], int]:
    """(problems, sections checked) of the landing folder, or of the named brains: each a brain id under the
    landing or the path of a brain folder anywhere (one being prepared for delivery)."""
    from cytolake.ingest.job import placement_checks

    landing = Path(settings.paths.landing)
    if brains:
        folders, problems = brain_folders(landing, brains)
    elif not landing.is_dir():
        return [Problem(str(landing), None, "landing folder does not exist")], 0
    else:
        problems = []
        folders = [(d, landing) for d in sorted(landing.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    checks = placement_checks(settings, Atlas(settings.atlas))
    n = 0
    for folder, root in folders:
        manifest = find_manifest(folder)
        if manifest is None:
            problems.append(Problem(str(folder), None, "no manifest.csv or manifest.json (cytolake landing init "
                                                       "writes a template)"))
            continue
        try:
            entries = read_manifest(manifest, root)
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


def _label_images(folder: Path) -> list[Path]:
    ann = folder / SKIPPED_FOLDERS[0]
    return sorted(p for p in ann.rglob("*") if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES)) \
        if ann.is_dir() else []


def _annotation_of(image: Path, section_id: int, labels: list[Path]) -> Path | None:
    """The one label image in annotations/ named after the image (`section_0001_labels.tif` for
    `section_0001.tif`), else the one whose trailing number is the section id; None when none or several."""
    stem = image.name.split(".")[0]
    named = [p for p in labels if p.name.split(".")[0] == stem or re.match(re.escape(stem) + r"[_\-.]", p.name)]
    if len(named) == 1:
        return named[0]
    numbered = [p for p in labels if (m := re.findall(r"(\d+)", p.name.split(".")[0])) and int(m[-1]) == section_id]
    return numbered[0] if not named and len(numbered) == 1 else None


def init_manifest(folder: Path, pattern: str | None = None, force: bool = False,
                  config: str | None = None) -> tuple[Path, list[str]]:
    """Write `folder/manifest.csv` for the images under it: section ids, relative image paths, the spacing
    from each header, and the label image beside each one in annotations/; the affine cells and warp_path are
    left empty to fill. Returns the manifest's path and notes on what still needs filling, ending with the
    check to run (with `--config CONFIG` when given)."""
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
    labels = _label_images(folder)
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
        ann = _annotation_of(p, sid, labels)
        rows.append([folder.name, sid, rel, "" if spacing is None else f"{spacing:.10g}", *([""] * 16),
                     "" if ann is None else ann.relative_to(folder).as_posix(), "", ""])
    path = folder / "manifest.csv"
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*REQUIRED, "annotation_path", *WARP_COLUMNS])
        w.writerows(sorted(rows, key=lambda r: r[1]))
    os.replace(tmp, path)
    paired = sum(bool(r[-3]) for r in rows)
    if labels:
        notes.append(f"annotation_path: {paired} of {len(rows)} sections paired with a label image in "
                     f"{SKIPPED_FOLDERS[0]}/ by name or section number; check them")
    command = f"cytolake{f' --config {config}' if config else ''} landing check {folder}"
    notes.append(f"fill {AFFINE_COLUMNS[0]}..{AFFINE_COLUMNS[-1]} (pixel -> MNI mm, or -> the brain's own space with "
                 f"warp_path), then run: {command}")
    return path, notes
