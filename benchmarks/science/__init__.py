"""Analyses of the science: what the synthetic world's patches carry, what the features add to the atlas,
and the seed's whole comparison over synthetic worlds."""
