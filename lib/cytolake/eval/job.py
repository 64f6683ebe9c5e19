"""The evaluate job: the comparison for every feature model in `evaluate.models`, its metrics in the lake,
and `paths.reports/eval-<date>-<fingerprint>/report.md` (with `run.json`). The run name is a fingerprint of the
graphs and settings, so a rerun on the same lake trains nothing, writes no metrics, and rewrites the same
report folder (`eval/plan.py`, `eval/report.py: report_folder`)."""

from __future__ import annotations

import datetime as _dt

import pyarrow.compute as pc

from cytolake.config import Settings
from cytolake.eval.compute import ModelResult, compare_model
from cytolake.eval.plan import evaluation_run, metrics_to_commit
from cytolake.eval.progress import Stages
from cytolake.eval.report import comparison_table, report_folder, write_report, write_run_info
from cytolake.export.job import report_section, run_export
from cytolake.gnn.job import write_curves
from cytolake.lake import Lake


def run_evaluate(settings: Settings, log=print) -> tuple[str, list[ModelResult]]:
    """(path of the report, per-model results)."""
    lake = Lake(settings.paths.lake)
    results = []
    models = settings.evaluate.models
    stage = Stages("evaluate", len(models) * (1 + 2 * len(settings.evaluate.gnn_seeds)) + 1, log)
    for m in models:
        results.append(compare_model(settings, m, log=log, stage=stage))
    run = evaluation_run({r.model_version: r.graphs.graph_hashes for r in results}, settings)
    committed = lake.read("metrics", ["run_id"], filters=pc.field("run_id") == run).num_rows > 0
    rows = metrics_to_commit(run, results, committed)
    if rows is not None:
        lake.merge("metrics", rows)
    for r in results:  # the comparison beside each encoder's TensorBoard log, one folder per evaluation
        write_curves(settings.paths.models / r.model_version / "tensorboard" / run, [],
                     {f"{m}/{k}": r.mean(m, k) for m in r.seed_scores for k in ("test_macro_f1", "transfer_macro_f1")})
    stage("metrics, report and maps")
    names = list(results[0].graphs.classes.names)
    sections = {(s["brain_id"], s["section_id"]): s for s in lake.read("sections").to_pylist()}
    folder = report_folder(settings.paths.reports, run, _dt.date.today())
    path = write_report(folder, results, names, sections, settings.evaluate.embedding_plot_points, settings.paths.models)
    write_run_info(folder, run, settings.source, [r.model_version for r in results], _dt.datetime.now(_dt.timezone.utc))
    first = results[0]
    best = max(first.clusters, key=lambda c: c["nmi"]) if first.clusters else None
    maps = run_export(settings, out=path.parent / "maps", model=first.model_version,
                      clusters=(best["assign"], best["k"]) if best else None, log=log)
    with open(path, "a") as f:
        f.write("\n" + report_section(maps, path.parent))
    log(f"report: {path}")
    log(comparison_table(results))
    return str(path), results
