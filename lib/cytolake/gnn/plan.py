"""Whether a GNN run trains: pure, on the predictions the lake already holds for the run's id (which is a
fingerprint of its graphs and settings, `gnn.job.run_id`)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def reusable_predictions(existing: pa.Table, n_nodes: int) -> np.ndarray | None:
    """`existing`: the committed predictions (brain_id, node_id, predicted) of one run id. Its predicted
    area per node in (brain, node) order, the GraphSet's order, when they cover all `n_nodes` nodes of
    its graphs; None when the run has to train. A run's predictions are committed in one partition
    replace, so a run has all of its rows or none."""
    if existing.num_rows != n_nodes:
        return None
    return existing.sort_by([("brain_id", "ascending"), ("node_id", "ascending")])["predicted"].to_numpy()
