"""Evaluation: probes of learned features, the poster's comparison table, clustering, and the report."""
