"""`jobs/reprocess.py` as the scheduler runs it, in real processes: a rerun commits nothing, a new brain is
processed without touching the others' files, two overlapping runs never duplicate, a locked lake is a
clear exit 4. (The lake's first run and the removed-section case run in this process, to save two JVM starts.)"""

import shutil
import subprocess
import sys
from collections import Counter

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from cytolake.lake import Lake
from cytolake.lake.lock import lake_lock
from cytolake.reprocess import run_reprocess
from cytolake.schemas import table_names
from cytolake.synth.job import run_synthesize

from conftest import ROOT, settings_at, write_config, with_train

BRAIN_TABLES = ("patches", "features", "graph_nodes", "graph_edges")  # partitioned by brain

pytestmark = pytest.mark.slow  # every stage of the pipeline, mostly as its own process


def reprocess(conf, *args, **kw):
    return subprocess.Popen([sys.executable, str(ROOT / "jobs" / "reprocess.py"), "--config", str(conf), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def finished(proc) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=900)
    return proc.returncode, out


def brain_files(lake: Lake, brains) -> dict[str, set[str]]:
    """Per brain-partitioned table: the committed files of those brains."""
    out = {}
    for t in BRAIN_TABLES:
        adds = pa.table(DeltaTable(str(lake.path(t))).get_add_actions(flatten=True)).to_pylist()
        out[t] = {a["path"] for a in adds if a["partition.brain_id"] in brains}
    return out


@pytest.fixture(scope="module")
def landed(tmp_path_factory, synth_landing, atlas_lake, spark):
    """A lake after one reprocess run over B01 and B02 (from the session's registered atlas: registering it
    is ingest's test), and a third synthetic brain waiting to land."""
    base = tmp_path_factory.mktemp("reprocess")
    three = settings_at(base / "synth")
    for b in ("B01", "B02"):
        shutil.copytree(synth_landing / b, three.paths.landing / b)
    # asking for three brains keeps the two already there (a brain depends on its own seed alone)
    made = run_synthesize(three.model_copy(update={"synth": three.synth.model_copy(update={"brains": 3})}),
                          workers=1, log=lambda *a: None)
    assert made == [("B01", False), ("B02", False), ("B03", True)]
    landing = base / "landing"
    for b in ("B01", "B02"):
        shutil.copytree(three.paths.landing / b, landing / b)
    cfg = with_train(settings_at(base, landing), model_version="random-init")  # no training in this test
    shutil.copytree(atlas_lake, cfg.paths.lake)
    conf = write_config(cfg, base / "conf.yaml")
    results = run_reprocess(cfg, spark, log=lambda *a: None)  # in this process: the tests below run jobs
    assert all(r.status == "ok" for r in results), results
    return cfg, conf, three.paths.landing / "B03"


def test_a_rerun_over_the_same_landing_commits_nothing(landed):
    cfg, conf, _ = landed
    lake = Lake(cfg.paths.lake)
    before = {t: lake.version(t) for t in table_names()}
    assert all(before[t] is not None for t in ("sections", "patches", "features", "graph_nodes", "predictions"))
    rc, out = finished(reprocess(conf))
    assert rc == 0, out[-4000:]
    assert {t: lake.version(t) for t in table_names()} == before
    assert "0 patch(es) embedded" in out and "rebuilt none" in out and "current" in out
    # the driver logs with the package's log4j2 file: none of Spark's start-up notices
    assert "default log4j profile" not in out and "NativeCodeLoader" not in out, out[:3000]


def test_overlapping_runs_over_a_new_brain_add_it_once_and_leave_the_others_files(landed):
    cfg, conf, b03 = landed
    lake = Lake(cfg.paths.lake)
    old = brain_files(lake, {"B01", "B02"})
    sections = {(r["brain_id"], r["section_id"]): r for r in lake.read("sections").to_pylist()}
    shutil.copytree(b03, cfg.paths.landing / "B03")
    runs = [reprocess(conf, "--wait", "900") for _ in range(2)]  # started together; one waits for the other
    results = [finished(p) for p in runs]
    for rc, out in results:
        assert rc == 0, out[-4000:]
    assert sum("waiting up to" in out for _, out in results) == 1

    lake = Lake(cfg.paths.lake)
    patches = lake.read("patches", ["patch_id", "brain_id"])
    ids = patches["patch_id"].to_pylist()
    assert len(ids) == len(set(ids)) and "B03" in set(patches["brain_id"].to_pylist())
    feats = lake.read("features", ["model_version", "patch_id"]).to_pylist()
    assert Counter((f["model_version"], f["patch_id"]) for f in feats).most_common(1)[0][1] == 1
    assert {f["patch_id"] for f in feats} == set(ids)
    nodes = lake.read("graph_nodes", ["brain_id", "node_id"]).to_pylist()
    assert len(nodes) == len({(n["brain_id"], n["node_id"]) for n in nodes}) and {n["brain_id"] for n in nodes} == {"B01", "B02", "B03"}
    secs = lake.read("sections").to_pylist()
    assert len(secs) == len({(r["brain_id"], r["section_id"]) for r in secs})
    assert {r["brain_id"] for r in secs} == {"B01", "B02", "B03"}
    for r in secs:
        if r["brain_id"] != "B03":
            assert r == sections[(r["brain_id"], r["section_id"])]  # untouched rows
    assert brain_files(lake, {"B01", "B02"}) == old  # untouched files
    preds = lake.read("predictions", ["run_id", "brain_id", "node_id"]).to_pylist()
    per_run = Counter((p["run_id"], p["brain_id"], p["node_id"]) for p in preds)
    assert max(per_run.values()) == 1 and any(p["brain_id"] == "B03" for p in preds)


def test_a_run_that_finds_the_lake_locked_exits_4_naming_the_holder(landed):
    cfg, conf, _ = landed
    with lake_lock(cfg.paths.lake, "pytest-holder"):
        rc, out = finished(reprocess(conf))
    assert rc == 4
    assert "locked by pytest-holder" in out and "not starting reprocess" in out


def test_a_failed_stage_is_reported_and_the_stages_after_it_skipped(tiled_copy, spark):
    # the session's tiled lake: ingest and tile find their work done, embed has no encoder to load
    results = run_reprocess(with_train(tiled_copy, model_version="never-trained"), spark, log=lambda *a: None)
    assert [(r.stage, r.status) for r in results] == [("check", "ok"),
        ("ingest", "ok"), ("tile", "ok"), ("embed", "failed"), ("build_graph", "skipped"), ("predict", "skipped")]
    assert "never-trained" in results[3].detail and "no trained encoder" in results[3].detail
    assert results[4].detail == "not run: embed failed"


def test_a_damaged_lake_stops_reprocess_before_it_writes(tiled_copy, spark):
    cfg = tiled_copy
    lake = Lake(cfg.paths.lake)
    gone = sorted(lake.path("pmaps").rglob("*.parquet"))[0]
    gone.unlink()
    before = {t: lake.version(t) for t in table_names()}
    results = run_reprocess(cfg, spark, log=lambda *a: None)
    assert results[0].stage == "check" and results[0].status == "failed"
    assert "table(s) pmaps damaged" in results[0].detail and gone.name in results[0].detail
    assert all(r.status == "skipped" for r in results[1:])
    assert {t: lake.version(t) for t in table_names()} == before


def test_a_section_removed_from_a_manifest_leaves_every_table(landed, spark):
    cfg, _, _ = landed
    m = cfg.paths.landing / "B01" / "manifest.csv"
    lines = m.read_text().splitlines(keepends=True)
    m.write_text("".join(line for line in lines if not line.startswith("B01,2,")))
    results = run_reprocess(cfg, spark, log=lambda *a: None)
    assert all(r.status == "ok" for r in results), results
    lake = Lake(cfg.paths.lake)
    gone = ("B01", 2)
    assert gone not in {(r["brain_id"], r["section_id"]) for r in lake.read("sections").to_pylist()}
    patches = lake.read("patches", ["brain_id", "section_id", "patch_id"]).to_pylist()
    assert patches and gone not in {(p["brain_id"], p["section_id"]) for p in patches}
    assert {f["patch_id"] for f in lake.read("features", ["patch_id"]).to_pylist()} == {p["patch_id"] for p in patches}
    nodes = lake.read("graph_nodes", ["brain_id", "node_id", "section_id"]).to_pylist()
    assert nodes and gone not in {(n["brain_id"], n["section_id"]) for n in nodes}
    current = {(n["brain_id"], n["node_id"]) for n in nodes}
    runs: dict[str, set] = {}
    for p in lake.read("predictions", ["run_id", "brain_id", "node_id"]).to_pylist():
        runs.setdefault(p["run_id"], set()).add((p["brain_id"], p["node_id"]))
    assert current in runs.values()  # the current predictions are of the graphs without the section
