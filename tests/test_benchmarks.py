"""Every benchmark script's smoke test: the script's own `main` (or, where a whole run is a pipeline, the
functions its `main` composes) on tiny sizes, on the session's test lakes where it needs one. They check that
the code path runs and prints what it promises, not any figure: a benchmark that no longer runs against the
library fails here, not months later in `make bench`."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml
import pyarrow.compute as pc
from conftest import ROOT, copy_of, quiet, write_config

from cytolake.lake import Lake
from cytolake.train.model import RANDOM_INIT, ensure_random_encoder

from benchmarks.science import cross_brain, neighbour_separability, node_patches, patch_information, validation_science, worlds
from benchmarks.throughput import embed, gnn, jvm_start, mask_memory, tile, tile_memory, train


def printed_json(capsys) -> dict:
    """The JSON object a benchmark printed last (the figures; progress lines go to stderr)."""
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


@pytest.fixture(scope="module")
def tiled_conf(tiled_session, tmp_path_factory) -> Path:
    """The session's tiled lake as a config file (the benchmarks take `--config`); read only."""
    return write_config(tiled_session, tmp_path_factory.mktemp("bench") / "tiled.yaml")


@pytest.fixture(scope="module")
def evaluated_conf(evaluated, tmp_path_factory) -> Path:
    """The session's evaluated lake (encoders, graphs, report) as a config file; read only."""
    return write_config(evaluated[0], tmp_path_factory.mktemp("bench") / "evaluated.yaml")


@pytest.fixture(scope="module")
def train_sections_conf(evaluated, tmp_path_factory) -> Path:
    """The evaluated lake with the transfer brain's patches and graph nodes relabelled `train`:
    validation_science reads only the training brains' annotated `train` sections and holds them out one
    at a time, so it needs two or more; the test lake's split leaves one."""
    base = tmp_path_factory.mktemp("bench")
    cfg = copy_of(evaluated[0], base, models=True)
    lake = Lake(cfg.paths.lake)
    for name in ("patches", "graph_nodes"):
        t = lake.read(name)
        split = pc.if_else(pc.equal(t["split"], "transfer"), "train", t["split"])
        lake.write_arrow(name, t.set_column(t.schema.get_field_index("split"), "split", split), "overwrite")
    return write_config(cfg, base / "train_sections.yaml")


@pytest.fixture(scope="module")
def wide_patches_conf(tiled_session, spark, tmp_path_factory) -> Path:
    """The tiled lake tiled again at 32 px with no transfer brain, and a random-init encoder: the depth
    profile that validation_science's probe computes needs 24 px or more (the test lake's patches are 16),
    its folds two annotated `train` sections, and the true-depth oracles (neighbour_separability's
    `--patches`) patches at the sections' own spacing. A wider stride than the test lake's keeps it small."""
    from cytolake.tiling.job import run_tile

    base = tmp_path_factory.mktemp("bench")
    cfg = copy_of(tiled_session, base)
    tiling = {"patch_px": 32, "transfer_brains": (), "spacing_um": cfg.synth.spacing_um, "stride_um": 4000.0}
    cfg = cfg.model_copy(update={"tiling": cfg.tiling.model_copy(update=tiling)})
    run_tile(cfg, spark, log=quiet)
    ensure_random_encoder(cfg, Path(cfg.paths.models) / RANDOM_INIT)
    return write_config(cfg, base / "wide.yaml")


# -- throughput -----------------------------------------------------------------------------------------------

def test_tile(tiled_conf, spark, capsys):
    """The demo-lake figures, the storage comparison and a small large section. (`--scaling`, in `make bench`,
    starts fresh Spark sessions, which would stop the test session's: not run here.)"""
    tile.main(["--config", str(tiled_conf), "--large-px", "2048", "--large-spacing-um", "400",
               "--large-stride-um", "4000"])
    r = printed_json(capsys)
    demo = r["demo_lake"]
    assert demo["patches"] > 0 and demo["ratio"] > 0 and demo["sections"] > 0
    assert r["storage"]["raw_zstd"]["bytes_per_patch"] > 0 and r["storage"]["png_vs_raw_size"] > 0
    assert r["large_section"]["px"] == "2048x2048" and r["large_section"]["patches"] > 0


def test_tile_memory(tiled_conf, capsys):
    tile_memory.main(["--config", str(tiled_conf), "--sizes", "1024", "2048", "--source-um", "200",
                      "--patch-px", "16", "--spacing-um", "400", "--stride-um", "4000"])
    r = printed_json(capsys)
    assert [s["px"] for s in r["sizes"]] == [1024, 2048]
    assert all(s["patches"] > 0 and s["stage_b_MB"] >= 0 for s in r["sizes"])


def test_mask_memory(capsys):
    mask_memory.main(["--sizes", "2048", "4096", "--source-um", "40", "--mask-um", "320"])
    r = printed_json(capsys)
    assert [s["mask"] for s in r["sizes"]] == [[256, 256], [512, 512]]
    assert all(0 < s["cortex_fraction"] < 1 for s in r["sizes"])


def test_train(tiled_conf, capsys):
    train.main(["--config", str(tiled_conf), "--patch-px", "32", "--batch", "2", "--steps", "1", "--device", "cpu",
                "--seed-px", "64", "--seed-samples", "64", "--seed-batch", "8", "--shuffle-buffer", "16"])
    r = printed_json(capsys)
    assert r["step"][0]["ours_samples_per_s"] > 0 and r["step"][0]["ratio"] > 0
    assert r["loss"]["loss_fwd_bwd_ms"] > 0
    assert r["reader"][0]["reader_samples_per_s"] > 0 and r["reader_seed_size"][0]["files"] > 0


def test_embed(capsys):
    embed.main(["--patch-px", "32", "--batch", "4", "--repeats", "1", "--device", "cpu"])
    r = printed_json(capsys)
    assert r["ours_patches_s"] > 0 and r["ours_vs_bare"] > 0
    assert all(r[f"{layout}_patches_s"] > 0 for layout in ("channels_last", "backbone", "contiguous"))


def test_gnn(capsys):
    gnn.main(["--config", str(ROOT / "conf" / "test.yaml"), "--nodes", "400", "--areas", "5"])
    r = printed_json(capsys)
    assert r["nodes"] == 400 and r["train_nodes"] == 120
    assert r["sampled_pass_s"] >= 0 and r["baseline_mlp_pass_s"] >= 0 and r["sampled_nodes_per_seed"] >= 1


@pytest.mark.slow
def test_jvm_start(capsys):
    from cytolake.engines.class_archive import archive_option

    if not archive_option():
        pytest.skip("no class-data archive in this environment (make setup writes it where the JDK can)")
    assert jvm_start.main(["--config", str(ROOT / "conf" / "test.yaml"), "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "archive on " in out and "archive off" in out and "ratio" in out


# -- science --------------------------------------------------------------------------------------------------

def test_patch_information(evaluated_conf, capsys):
    assert patch_information.main(["--config", str(evaluated_conf)]) == 0
    out = capsys.readouterr().out
    assert "test:" in out and "transfer:" in out and "macro-F1" in out


def test_node_patches(evaluated_conf, capsys):
    assert node_patches.main(["--config", str(evaluated_conf), "--model", "random-init"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["nodes"] > 100 and out["nodes_with_own_patch"] == out["nodes"]  # every node's own patch
    assert out["centre_in_own_area"] == 1.0  # by construction: the patch is centred at the node


@pytest.mark.slow
def test_neighbour_separability(wide_patches_conf, capsys):
    """Slow: finding the pairs the atlas confuses reads every area's map (~20-45 s on a busy host). With
    `--patches` on a lake too small for any pair: the features and oracles are computed, no pair is scored."""
    neighbour_separability.main(["--config", str(wide_patches_conf), "--brains", "6", "--top", "3",
                                 "--per-brain", "3", "--patches"])
    r = printed_json(capsys)
    assert r["summary"]["confused_pairs"] > 0 and len(r["most_confused"]) == 3
    for kind in ("ideal", "rendered", "rendered_two_brains"):
        assert 0 <= r["summary"][kind]["voxel_weighted_mean_accuracy"] <= 1
    assert r["demo_patches"] == []


@pytest.mark.slow
def test_validation_science_probe(wide_patches_conf, capsys):
    """Slow: 16 prior + correction fits and a logistic regression per feature set (~20-80 s). Its oracles
    (`--oracle`, `--area-isolated`) are left out: minutes here; their true-depth profiles are
    neighbour_separability's, run by its test with `--patches`."""
    assert validation_science.main(["--config", str(wide_patches_conf), "probe"]) == 0
    out = capsys.readouterr().out
    assert "labelled train-split patches" in out and "(0 sections)" not in out
    for features in ("hand-made statistics", "depth profile", "random-init"):
        assert f"\n{features} " in out


def test_cross_brain(train_sections_conf, capsys):
    assert cross_brain.main(["--config", str(train_sections_conf), "--models", "random-init"]) == 0
    row = printed_json(capsys)["random-init"]
    assert len(row["pairs"]) >= 2 and len(row["pooled"]) == len(row["per_brain"]) == len(row["pairs"])
    assert all(0 <= f <= 1 for f in row["pooled"] + row["per_brain"])
    assert row["mean_shift_sd"] and all(v >= 0 for v in row["mean_shift_sd"].values())


def test_validation_science_gnn(train_sections_conf, capsys):
    assert validation_science.main(["--config", str(train_sections_conf), "gnn", "--models", "random-init",
                                    "--epochs", "2", "--patience", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("held out") >= 2 and "against the prior's argmax" in out


def test_worlds_config_table_and_checks(evaluated, tmp_path):
    """A whole world is the demo's pipeline (minutes): here the functions `main` composes around it, on the
    scores.json that the evaluated test lake's report wrote, its feature models named as the demo's."""
    conf = worlds.world_config(ROOT / "conf" / "test.yaml", 3, tmp_path / "seed-3")
    raw = yaml.safe_load(conf.read_text())
    assert raw["synth"]["seed"] == 3 and raw["paths"]["lake"] == str(tmp_path / "seed-3" / "lake")
    scores = json.loads(next(Path(evaluated[0].paths.reports).glob("eval-*/scores.json")).read_text())
    demo = {"cont-pmap": scores[next(k for k in scores if k != "random-init")], "random-init": scores["random-init"]}
    checks = worlds.checks(demo)
    assert len(checks) == 10 and all(isinstance(v, bool) for v in checks.values())
    table = worlds.table({0: demo, 1: demo}).splitlines()
    assert [line.split(" | ")[0] for line in table[2:]] == ["| cont-pmap", "| random-init", "| pmap-argmax (atlas alone)"]
    assert all(line.count("±") == 6 for line in table[2:])


# -- the rules every script keeps -----------------------------------------------------------------------------

SCRIPTS = sorted((ROOT / "benchmarks").rglob("*.py"))


def test_no_benchmark_edits_sys_path_or_patches_the_library():
    """Benchmarks import the library's public functions as installed and each other as the `benchmarks`
    package: no `sys.path` edits, no mocks or attribute assignments on cytolake modules."""
    assert len(SCRIPTS) >= 14
    for path in SCRIPTS:
        text = path.read_text()
        assert "sys.path" not in text, path
        assert "unittest.mock" not in text and "monkeypatch" not in text, path
        tree = ast.parse(text)
        library = {a.asname or a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                   for a in node.names if a.name.startswith("cytolake")}
        library |= {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    and (node.module or "").startswith("cytolake") for a in node.names}
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AugAssign, ast.AnnAssign)) else []
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
                targets = node.args[:1]
            for t in targets:
                while isinstance(t, ast.Attribute):
                    t = t.value
                    assert not (isinstance(t, ast.Name) and t.id in library), f"{path}:{node.lineno} changes {t.id}"


def test_every_benchmark_named_in_the_docs_exists():
    """Each `benchmarks/...` path and `benchmarks.<package>.<module>` named in the Makefile, README, docs and
    the benchmarks' own pages is there (scripts moved once: a stale name fails here)."""
    pages = [ROOT / "Makefile", ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "benchmarks" / "README.md",
             ROOT / "benchmarks" / "RESULTS.md", *SCRIPTS, ROOT / "benchmarks" / "throughput" / "gpu.sh"]
    named = set()
    for page in pages:
        text = page.read_text()
        named |= {m.rstrip(".") for m in re.findall(r"benchmarks/[\w./-]*\w", text)}
        named |= {m.replace(".", "/") + ".py" for m in re.findall(r"\bbenchmarks(?:\.\w+)+", text)
                  if not m.endswith((".md", ".py", ".sh"))}
    assert named
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert not missing, missing
