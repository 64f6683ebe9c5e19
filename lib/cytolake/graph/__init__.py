"""Surface graphs: per-brain cortex reconstruction from sections, meshes, node and edge tables."""
