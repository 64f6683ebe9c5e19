"""Batch inference of a trained encoder over the `patches` table into `features`."""
