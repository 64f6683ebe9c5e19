"""`cytolake runs` and `cytolake report` on the evaluated test lake (real encoders, GNN runs, report folders),
checked against the lake's own tables; and the report folder's name, dated and found again by fingerprint."""

import datetime as dt
import json
import re

import pyarrow.compute as pc
import pytest

from cytolake.cli import main
from cytolake.eval.report import report_folder
from cytolake.lake import Lake

from conftest import MODELS, write_config


def test_a_report_folder_is_dated_and_a_rerun_of_the_same_fingerprint_finds_it_on_any_day(tmp_path):
    first = report_folder(tmp_path, "eval-0123456789ab", dt.date(2026, 12, 6))
    assert first == tmp_path / "eval-20261206-0123456789ab"
    first.mkdir()
    assert report_folder(tmp_path, "eval-0123456789ab", dt.date(2027, 1, 2)) == first
    assert report_folder(tmp_path, "eval-ba9876543210", dt.date(2027, 1, 2)) == tmp_path / "eval-20270102-ba9876543210"
    (tmp_path / "eval-ba9876543210").mkdir()  # a folder named by the bare run id, as reports were before
    assert report_folder(tmp_path, "eval-ba9876543210", dt.date(2027, 1, 2)) == tmp_path / "eval-ba9876543210"


def _runs(conf, capsys, *args) -> list[dict]:
    capsys.readouterr()
    assert main(["--config", conf, "runs", "--format", "json", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.slow
def test_runs_lists_every_encoder_gnn_run_and_report_with_what_made_it(evaluated, tmp_path, capsys):
    cfg, report, _ = evaluated
    conf = str(write_config(cfg, tmp_path / "cfg.yaml"))
    lake = Lake(cfg.paths.lake)
    runs = _runs(conf, capsys)
    by_kind = {k: [r for r in runs if r["kind"] == k] for k in ("encoder", "gnn", "evaluation", "probe", "export")}

    # encoders: each model's folder, its fingerprint the weights hash that `features` rows were embedded with
    assert {r["id"] for r in by_kind["encoder"]} == set(MODELS)
    for r in by_kind["encoder"]:
        used = lake.read("features", ["encoder_hash"], filters=pc.field("model_version") == r["id"])
        assert {h[:12] for h in used["encoder_hash"].to_pylist()} == {r["fingerprint"]}
        assert r["path"] == str(cfg.paths.models / r["id"]) and r["date"]
    assert "loss" in next(r for r in by_kind["encoder"] if r["id"] == "test-contrastive")["figures"]

    # GNN runs: exactly the runs in `predictions`, each with its test macro-F1 from `metrics` and its partition
    in_lake = set(lake.read("predictions", ["run_id"])["run_id"].unique().to_pylist())
    assert {r["id"] for r in by_kind["gnn"]} == in_lake and len(in_lake) >= 4
    f1 = {m["run_id"]: m["value"] for m in lake.read("metrics").to_pylist()
          if m["stage"] == "train_gnn" and m["split"] == "test" and m["metric"] == "macro_f1"}
    for r in by_kind["gnn"]:
        assert f"test {f1[r['id']]:.3f}" in r["figures"] and r["path"].endswith(f"predictions/run_id={r['id']}")
        assert re.match(r"gnn\+? on ", r["config"])

    # the evaluation: a dated folder, its fingerprint kept in run.json and in `metrics`' run_id
    [ev] = by_kind["evaluation"]
    info = json.loads((report.parent / "run.json").read_text())
    assert ev["path"] == str(report) and re.fullmatch(rf"eval-\d{{8}}-{info['fingerprint']}", report.parent.name)
    assert ev["id"] == info["run_id"] == f"eval-{info['fingerprint']}" and ev["fingerprint"] == info["fingerprint"]
    assert info["run_id"] in set(lake.read("metrics", ["run_id"])["run_id"].to_pylist())
    assert "PNG figures" in ev["figures"] and "gnn+ test" in ev["figures"]
    assert _runs(conf, capsys, "--kind", "encoder") == by_kind["encoder"]

    # an export folder: the GNN run it maps, its brains
    mine = cfg.model_copy(update={"paths": cfg.paths.model_copy(update={"reports": tmp_path / "reports"})})
    conf2 = str(write_config(mine, tmp_path / "mine.yaml"))
    assert main(["--config", conf2, "export", "--model", MODELS[0], "--no-html"]) == 0
    [ex] = _runs(conf2, capsys, "--kind", "export")
    rid = ex["id"].removeprefix("maps-")
    assert rid in in_lake and ex["config"] == f"maps of GNN run {rid}" and ex["figures"] == "2 brain(s): B01 B02"

    # `report` prints the latest report's path; a piped table shows every id whole
    assert main(["--config", conf, "report"]) == 0
    assert capsys.readouterr().out.strip() == str(report)
    assert main(["--config", conf, "runs"]) == 0
    table = capsys.readouterr().out
    assert all(r["id"] in table and r["path"] in table for r in runs) and "…" not in table
