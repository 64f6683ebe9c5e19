"""Evaluation: probes of learned features, the seed's comparison table, clustering, and the report."""
