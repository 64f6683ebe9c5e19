"""What a scheduler runs when brains land: every stage, each doing only what is new or changed.

check (every table's snapshot against its log, as `cytolake check`: a damaged lake is written by no stage) ->
ingest (new or changed brains and sections) -> tile (sections without current patches) -> embed (patches
without features of the current model, `train.model_version`) -> build_graph (brains whose inputs
changed) -> predict (the GNN+ over the current model's graphs; a run id that already has predictions
trains nothing). Each stage is incremental on its own, so a second run over the same landing commits
nothing anywhere. A stage that raises is recorded as failed and the stages that need it are skipped.
The caller holds the lake lock (`cytolake.lake.lock`), which is what makes overlapping runs safe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cytolake.config import Settings
from cytolake.embed.job import run_embed
from cytolake.gnn.job import run_train_gnn
from cytolake.graph.job import run_build_graph
from cytolake.ingest.job import run_ingest
from cytolake.lake import Lake
from cytolake.lake.check import LakeDamaged, check_lake
from cytolake.tiling.job import run_tile

STAGES = ("check", "ingest", "tile", "embed", "build_graph", "predict")


@dataclass
class StageResult:
    stage: str
    status: str  # ok | partial (some sections/brains failed, the rest done) | failed | skipped
    detail: str
    failed_items: int = 0


def _check(settings: Settings, spark, log) -> StageResult:
    problems = [p for ps in check_lake(Lake(settings.paths.lake)).values() for p in ps]
    if problems:
        raise LakeDamaged(problems, "write the lake")
    return StageResult("check", "ok", "every table's files and log agree")


def _ingest(settings: Settings, spark, log) -> StageResult:
    s = run_ingest(settings, spark, log=log)
    changed = sorted(b for b, v in s.brains.items() if v.get("changed"))
    failed = s.failed_sections + s.failed_brains
    return StageResult("ingest", "partial" if failed else "ok",
                       f"{len(s.brains)} brain(s) in landing, new or changed: {changed or 'none'}; "
                       f"{s.failed_sections} section(s) and {s.failed_brains} brain(s) failed", failed)


def _tile(settings: Settings, spark, log) -> StageResult:
    s = run_tile(settings, spark, log=log)
    return StageResult("tile", "partial" if s.failed else "ok",
                       f"{len(s.tiled)} section(s) tiled into {sum(s.tiled.values())} patches, brains committed: "
                       f"{s.committed_brains or 'none'}; {len(s.failed)} section(s) failed", len(s.failed))


def _embed(settings: Settings, spark, log) -> StageResult:
    s = run_embed(settings, spark, settings.train.model_version, log=log)
    return StageResult("embed", "ok", f"{settings.train.model_version}: {sum(s.embedded.values())} patch(es) "
                                      f"embedded, {sum(s.dropped.values())} stale row(s) dropped")


def _graph(settings: Settings, spark, log) -> StageResult:
    s = run_build_graph(settings, spark, settings.train.model_version, log=log)
    return StageResult("build_graph", "partial" if s.failed else "ok",
                       f"rebuilt {sorted(s.built) or 'none'}, {len(s.skipped)} current, {len(s.failed)} failed",
                       len(s.failed))


def _predict(settings: Settings, spark, log) -> StageResult:
    run = run_train_gnn(settings, settings.train.model_version, "gnn+", log=log)
    return StageResult("predict", "ok", f"run {run.run_id}: {'trained and predicted' if run.trained else 'current'}; "
                                        f"macro-F1 test {run.scores['test_macro_f1']:.3f}")


_RUN: dict[str, Callable[[Settings, object, Callable], StageResult]] = {
    "check": _check, "ingest": _ingest, "tile": _tile, "embed": _embed, "build_graph": _graph, "predict": _predict}


def run_reprocess(settings: Settings, spark, log=print) -> list[StageResult]:
    """Every stage in order; a stage after a failed one is skipped (its input would be stale or missing)."""
    results: list[StageResult] = []
    for stage in STAGES:
        failed = next((r.stage for r in results if r.status == "failed"), None)
        if failed:
            r = StageResult(stage, "skipped", f"not run: {failed} failed")
        else:
            log(f"== reprocess: {stage}")
            try:
                r = _RUN[stage](settings, spark, log)
            except Exception as e:  # recorded, and the summary names it; the lake is as the last commit left it
                r = StageResult(stage, "failed", f"{type(e).__name__}: {e}")
        log(f"reprocess {r.stage}: {r.status}: {r.detail}")
        results.append(r)
    return results
