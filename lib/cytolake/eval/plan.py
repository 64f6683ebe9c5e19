"""The evaluation run's name and the metrics it commits, decided on the comparison's results (pure).

The name is a fingerprint of every model's graphs and the settings, so a rerun on the same lake finds
its metrics committed and commits nothing."""

from __future__ import annotations

import pyarrow as pa

from cytolake.config import Settings
from cytolake.gnn.job import metric_rows
from cytolake.lake.fingerprint import short_fingerprint


def evaluation_run(graph_hashes: dict[str, dict[str, str]], settings: Settings) -> str:
    """`graph_hashes`: model_version -> brain -> graph_hash of the graphs evaluated."""
    return "eval-" + short_fingerprint({"graphs": graph_hashes, "gnn": settings.gnn.model_dump(mode="json"),
                                        "evaluate": settings.evaluate.model_dump(mode="json"),
                                        "merge_hemispheres": settings.atlas.merge_hemispheres})


def metrics_to_commit(run: str, results: list, committed: bool) -> pa.Table | None:
    """The run's metrics rows (the poster's baselines' scores and the clusterings' ARI and NMI of every model),
    None when the run's metrics are already `committed`. `results`: eval.compare.ModelResult."""
    if committed:
        return None
    tables = []
    for r in results:
        for method in ("pmap-argmax", "linear"):
            tables.append(metric_rows(run, r.model_version, method, r.seed_scores[method][0], {"method": method}))
        for c in r.clusters:
            tables.append(metric_rows(run, r.model_version, "clustering",
                                      {f"all_ari_k{c['k']}": c["ari"], f"all_nmi_k{c['k']}": c["nmi"]}, {}))
    return pa.concat_tables(tables) if tables else None
