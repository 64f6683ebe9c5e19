"""Whether the lake's `areas` were registered from the configured atlas: every later stage orders its pmap
vectors by those rows, so a lake registered from another atlas (or not yet) must be ingested first."""

from __future__ import annotations

from cytolake.atlas.pmaps import Atlas
from cytolake.lake import Lake


def atlas_matches(areas: list[dict], atlas: Atlas) -> bool:
    """`areas` (rows of the lake's areas table) are the complete registration of `atlas`."""
    return bool(areas) and {a["atlas_hash"] for a in areas} == {atlas.hash}


def registered_areas(lake: Lake, atlas: Atlas) -> list[dict]:
    """The lake's areas rows; RuntimeError when they are not the registration of `atlas`."""
    areas = lake.read("areas").to_pylist()
    if not atlas_matches(areas, atlas):
        raise RuntimeError(f"the lake's areas do not match the configured atlas {atlas.maps_path}: run ingest first")
    return areas
