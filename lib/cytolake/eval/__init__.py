"""Evaluation: probes of learned features, and (later) the seed's comparison table."""
