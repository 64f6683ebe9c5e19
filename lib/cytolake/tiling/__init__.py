"""Tiling: sections -> patches inside cortex, with reference position, pmap vector, label and split."""
