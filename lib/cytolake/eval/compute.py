"""The evaluate stage's compute: per feature model, the GNN and GNN+ runs of every seed, the linear probe,
the atlas prior and the k-means clusters on its graphs, scored per split with paired intervals; it lives in
`eval/compare.py` (`compare_model`, `ModelResult`). `eval/job.py` wires it, commits the metrics and writes
the report (`eval/report.py`) and maps."""

from cytolake.eval.compare import ModelResult, compare_model

__all__ = ["ModelResult", "compare_model"]
