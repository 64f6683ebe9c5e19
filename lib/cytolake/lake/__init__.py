"""The lake: Delta tables under `paths.lake`, committed with delta-rs, written and read by Spark."""

from cytolake.lake.tables import Lake

__all__ = ["Lake"]
