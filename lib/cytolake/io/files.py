"""Content hashes and change signatures of inputs that are a file (TIFF) or a folder (OME-Zarr)."""

from __future__ import annotations

import stat
from pathlib import Path

import xxhash


def _members(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def content_hash(path: str | Path, chunk: int = 8 << 20) -> str:
    """xxh3-128 of a file's bytes, or of a folder's relative file names and bytes in sorted order."""
    path = Path(path)
    h = xxhash.xxh3_128()
    for p in _members(path):
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode() + b"\0")
        with open(p, "rb") as f:
            while b := f.read(chunk):
                h.update(b)
    return h.hexdigest()


def signature(path: str | Path) -> tuple[int, int]:
    """(total size, newest mtime in ns): unchanged means the content hash can be reused."""
    stats = [p.stat() for p in _members(Path(path))]
    return sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)


def special_file(path: str | Path) -> str | None:
    """What `path` is when it is neither a regular file nor a folder (`a FIFO`, `a socket`, `a device`), else
    None. Such a path is refused before it is opened: opening a FIFO waits for a writer that may never come."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
