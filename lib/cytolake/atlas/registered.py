"""The lake's `areas` as every later stage reads them: registered from the configured atlas, and written with
every column of `schemas/areas.yaml`. Every later stage orders its pmap vectors by those rows and names areas
by their `label`, so a lake registered from another atlas, by an older cytolake (no `label`) or not yet must be
ingested first; ingest rewrites an outdated `areas` table (`ingest/job.py`, `register_atlas`)."""

from __future__ import annotations

from cytolake.atlas.pmaps import Atlas
from cytolake.lake import Lake


class AreasOutdated(RuntimeError):
    """The lake's areas table was written before a column of its schema was added; ingest rewrites it."""


def atlas_matches(areas: list[dict], atlas: Atlas) -> bool:
    """`areas` (rows of the lake's areas table) are the complete registration of `atlas`."""
    return bool(areas) and {a["atlas_hash"] for a in areas} == {atlas.hash}


def area_rows(lake: Lake) -> list[dict]:
    """The lake's areas rows in area order; AreasOutdated, naming the table and the columns it lacks, when it
    was written before they were added to its schema."""
    if missing := lake.missing_columns("areas"):
        raise AreasOutdated(f"table areas ({lake.path('areas')}) has no column {', '.join(missing)}: it was "
                            f"registered by an older cytolake; run ingest again (it rewrites areas, nothing else)")
    return lake.read("areas").sort_by("area_index").to_pylist()


def area_labels(lake: Lake) -> list[str]:
    """Each area's label (`Area.label`) by area_index: the names every report, export and lookup table prints."""
    return [a["label"] for a in area_rows(lake)]


def registered_areas(lake: Lake, atlas: Atlas) -> list[dict]:
    """The lake's areas rows; RuntimeError when they are not the registration of `atlas`."""
    areas = area_rows(lake)
    if not atlas_matches(areas, atlas):
        raise RuntimeError(f"the lake's areas do not match the configured atlas {atlas.maps_path}: run ingest first")
    return areas
