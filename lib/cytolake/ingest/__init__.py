"""Ingest: register the areas, the sparse pmaps and every brain's sections in the lake."""
