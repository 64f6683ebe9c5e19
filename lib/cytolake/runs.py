"""What the pipeline has produced, one row per run: every encoder under `paths.models`, every GNN run in
`predictions` / `metrics`, every evaluation report, probe and export folder under `paths.reports`.

Each row says what it is, its id, the fingerprint that makes it current (the encoder's weights hash, a GNN run
id, an evaluation's fingerprint), the config or settings it came from, when it was written, its headline
figures and where its files are: the answer to "which run made this, and where is it?" without reading the
lake's tables or the folders by hand. Reads files and the lake only.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from cytolake.config import Settings
from cytolake.io.files import content_hash
from cytolake.lake import Lake

KINDS = ("encoder", "gnn", "evaluation", "probe", "export")


@dataclass(frozen=True)
class Run:
    kind: str  # one of KINDS
    id: str
    fingerprint: str
    date: str  # ISO 8601, UTC, to the second
    figures: str
    config: str
    path: str


def _when(path: Path) -> str:
    return _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _last_loss(metrics_csv: Path) -> str:
    if not metrics_csv.is_file():
        return ""
    rows = list(csv.DictReader(open(metrics_csv, newline="")))
    return f"loss {float(rows[-1]['loss']):.4f} at step {rows[-1]['step']}" if rows and rows[-1].get("loss") else ""


def encoder_runs(models: Path) -> list[Run]:
    """Every encoder folder (one with `config.json` and `encoder.pt`) under `models`."""
    runs = []
    for d in sorted(p for p in Path(models).glob("*") if (p / "config.json").is_file() and (p / "encoder.pt").is_file()):
        cfg = json.loads((d / "config.json").read_text())
        t = cfg.get("train", {})
        tb = " + tensorboard/" if (d / "tensorboard").is_dir() else ""
        runs.append(Run("encoder", d.name, content_hash(d / "encoder.pt")[:12], _when(d / "encoder.pt"),
                        (_last_loss(d / "metrics.csv") or f"{cfg.get('steps', 0)} steps (untrained)") + tb,
                        f"objective {t.get('objective', '?')}, {t.get('backbone', '?')}, {cfg.get('world', 1)} process(es)",
                        str(d)))
    return runs


def _f1(scores: dict, split: str) -> str:
    v = scores.get(split)
    return "" if v is None else f"{split} {v:.3f}"


def gnn_runs(lake: Lake) -> list[Run]:
    """Every run in `predictions`, with its `train_gnn` scores and details from `metrics`."""
    if not lake.exists("predictions"):
        return []
    preds = lake.read("predictions", ["run_id", "model_version", "gnn", "brain_id"])
    groups = preds.group_by(["run_id", "model_version", "gnn"]).aggregate([("brain_id", "count_distinct"),
                                                                          ("brain_id", "count")])
    metrics = lake.read("metrics", filters=pc.field("stage") == "train_gnn") if lake.exists("metrics") else None
    root = Path(lake.path("predictions"))
    runs = []
    for g in groups.sort_by("run_id").to_pylist():
        rid = g["run_id"]
        mine = metrics.filter(pc.field("run_id") == rid).to_pylist() if metrics is not None else []
        f1 = {m["split"]: m["value"] for m in mine if m["metric"] == "macro_f1"}
        details = json.loads(mine[0]["details"] or "{}") if mine else {}
        when = max((m["recorded_at"] for m in mine), default=None)
        figures = ", ".join(x for x in (f"macro-F1 {_f1(f1, 'test')}", _f1(f1, "transfer")) if x.strip()) \
            if f1 else ""
        runs.append(Run("gnn", rid, rid.rsplit("-", 1)[-1], when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else "",
                        f"{figures}; {g['brain_id_count']} nodes in {g['brain_id_count_distinct']} brain(s)".lstrip("; "),
                        f"{g['gnn']} on {g['model_version']}" + (f", best epoch {details['best_epoch']}"
                                                                  if "best_epoch" in details else ""),
                        str(root / f"run_id={rid}")))
    return runs


def _headline(scores: dict) -> str:
    """GNN+ and the linear probe on test, mean over seeds, for the first feature model of the report."""
    if not scores:
        return ""
    name, s = next(iter(scores.items()))
    mean = {m: sum(v) / len(v) for m in ("linear", "gnn+") if (v := s.get(m, {}).get("test"))}
    return f"{name}: " + ", ".join(f"{m} test {v:.3f}" for m, v in mean.items())


def report_runs(reports: Path) -> list[Run]:
    """Evaluation report folders (`eval-*` with a report.md), probe results (`probe-*.json`) and export
    folders (`maps-*`) under `reports`."""
    reports = Path(reports)
    runs = []
    for d in sorted(reports.glob("eval-*")):
        if not (d / "report.md").is_file():
            continue
        info = json.loads((d / "run.json").read_text()) if (d / "run.json").is_file() else {}
        scores = json.loads((d / "scores.json").read_text()) if (d / "scores.json").is_file() else {}
        pngs = sorted(d.glob("*.png"))
        models = ", ".join(info.get("models") or [s.get("model_version", k) for k, s in scores.items()])
        runs.append(Run("evaluation", info.get("run_id", d.name), info.get("fingerprint", d.name.rsplit("-", 1)[-1]),
                        info.get("created", _when(d / "report.md"))[:19] + "Z",
                        "; ".join(x for x in (_headline(scores), f"{len(pngs)} PNG figures") if x),
                        f"{info['config']}: {models}" if info.get("config") else models, str(d / "report.md")))
    for f in sorted(reports.glob("probe-*.json")):
        results = json.loads(f.read_text())  # encoder -> metric -> value: the probed encoder, then random-init
        figures = "; ".join(f"{name}: " + ", ".join(f"{k.removesuffix('_macro_f1')} {v:.3f}" for k, v in sorted(r.items())
                                                    if "macro_f1" in k and isinstance(v, (int, float)))
                            for name, r in results.items())
        runs.append(Run("probe", f.stem, "", _when(f), f"macro-F1 {figures}", " vs ".join(results), str(f)))
    for d in sorted(p for p in reports.glob("maps-*") if p.is_dir()):
        brains = sorted(p.name.removesuffix(".surf.gii") for p in d.glob("*.surf.gii"))
        rid = d.name.removeprefix("maps-")
        runs.append(Run("export", d.name, rid.rsplit("-", 1)[-1], _when(d), f"{len(brains)} brain(s): {' '.join(brains)}",
                        f"maps of GNN run {rid}", str(d)))
    return runs


def list_runs(settings: Settings) -> list[Run]:
    """Every run the config's lake, models and reports folders hold, oldest first within each kind."""
    runs = encoder_runs(settings.paths.models) + gnn_runs(Lake(settings.paths.lake)) + report_runs(settings.paths.reports)
    return sorted(runs, key=lambda r: (KINDS.index(r.kind), r.date, r.id))


def runs_table(runs: list[Run]) -> pa.Table:
    cols = list(Run.__dataclass_fields__)
    return pa.table({c: [asdict(r)[c] for r in runs] for c in cols}, schema=pa.schema([(c, pa.string()) for c in cols]))


def latest_report(settings: Settings) -> Path | None:
    """The report.md of the most recently written evaluation (by its run.json, else the file's time)."""
    reports = [r for r in report_runs(settings.paths.reports) if r.kind == "evaluation"]
    if not reports:
        return None

    def written(r: Run) -> str:
        info = Path(r.path).with_name("run.json")
        return json.loads(info.read_text()).get("written", "") if info.is_file() else _when(Path(r.path))

    return Path(max(reports, key=lambda r: (written(r), r.path)).path)
