"""The lake's storage: Delta tables under `paths.lake`, committed with delta-rs, their logs checked, compacted
and vacuumed. What reads and writes them with Spark or SQL lives a layer up, in `cytolake.engines`."""

from cytolake.lake.tables import Lake

__all__ = ["Lake"]
