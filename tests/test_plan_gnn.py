"""train_gnn's, export's and evaluate's incremental rules on their pure plans: no Spark, no training."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cytolake.atlas.classes import classes_of
from cytolake.config import load_config
from cytolake.eval.compare import ModelResult
from cytolake.eval.plan import evaluation_run, metrics_to_commit
from cytolake.export.plan import ExportError, meshes_to_export
from cytolake.gnn.data import GraphSet
from cytolake.gnn.job import run_id
from cytolake.gnn.plan import reusable_predictions

CFG = load_config(Path(__file__).resolve().parents[1] / "conf" / "test.yaml")
HASHES = {"B01": "h1", "B02": "h2"}


def graphs(hashes=HASHES, model="m1") -> GraphSet:
    n = 3
    z = np.zeros(n)
    return GraphSet(model, np.array(["B01", "B01", "B02"]), np.array([0, 1, 0]), z, np.array(["train"] * n),
                    np.array([0, 1, -1]), np.zeros((n, 2), np.float32), np.zeros((n, 2), np.float32),
                    np.zeros((n, 3), np.float32), z, z, np.array([0, 1]), np.array([1, 0]), dict(hashes),
                    classes_of([{"area_index": 0, "name": "a", "hemisphere": "B", "label": "a"},
                                {"area_index": 1, "name": "b", "hemisphere": "B", "label": "b"}], False), np.array([0, 1, -1]))


def with_gnn(**kw):
    return CFG.model_copy(update={"gnn": CFG.gnn.model_copy(update=kw)})


# settings a run does not depend on: another lake folder and another Spark master
ELSEWHERE = CFG.model_copy(update={"paths": CFG.paths.model_copy(update={"lake": "/elsewhere/lake"}),
                                   "spark": CFG.spark.model_copy(update={"master": "local[1]"})})


def test_the_same_graphs_settings_and_kind_give_the_same_run():
    assert run_id(graphs(), "gnn", CFG) == run_id(graphs(), "gnn", ELSEWHERE)


@pytest.mark.parametrize("change", [
    lambda: (graphs({"B01": "h1", "B02": "rebuilt"}), "gnn", CFG),  # a rebuilt brain's graph
    lambda: (graphs(), "gnn", with_gnn(seed=CFG.gnn.seed + 1)),  # a new GNN seed
    lambda: (graphs(), "gnn", with_gnn(epochs=CFG.gnn.epochs + 1)),
    lambda: (graphs(), "gnn+", CFG),
    lambda: (graphs(model="m2"), "gnn", CFG)])
def test_a_changed_graph_setting_seed_kind_or_model_is_a_new_run(change):
    assert run_id(*change()) != run_id(graphs(), "gnn", CFG)


def test_gnn_plus_and_gnn_runs_are_named_for_their_kind_and_model():
    assert run_id(graphs(), "gnn+", CFG).startswith("gnnplus-m1-") and run_id(graphs(), "gnn", CFG).startswith("gnn-m1-")


def predictions(rows):
    return pa.table({"brain_id": [r[0] for r in rows], "node_id": [r[1] for r in rows], "predicted": [r[2] for r in rows]})


def test_a_run_with_predictions_for_every_node_trains_nothing_and_returns_them_in_node_order():
    got = reusable_predictions(predictions([("B02", 0, 7), ("B01", 1, 5), ("B01", 0, 4)]), 3)
    assert got.tolist() == [4, 5, 7]


@pytest.mark.parametrize("rows", [[], [("B01", 0, 4), ("B01", 1, 5)]])
def test_a_run_without_predictions_for_every_node_trains(rows):
    assert reusable_predictions(predictions(rows), 3) is None


def meshes(*pairs):
    return pa.table({"brain_id": [b for b, _ in pairs], "graph_hash": [h for _, h in pairs],
                     "vertices": [[0.0, 0.0, 0.0]] * len(pairs)})


def test_export_takes_every_brain_with_the_mesh_of_its_current_graph():
    got = meshes_to_export("m1", HASHES, meshes(("B02", "h2"), ("B01", "h1")))
    assert list(got) == ["B01", "B02"] and got["B02"]["graph_hash"] == "h2"
    assert list(meshes_to_export("m1", HASHES, meshes(("B02", "h2"), ("B01", "h1")), ["B02"])) == ["B02"]


@pytest.mark.parametrize("mesh", [meshes(("B01", "h1")), meshes(("B01", "h1"), ("B02", "older"))])
def test_export_refuses_a_brain_whose_mesh_is_missing_or_of_another_build(mesh):
    with pytest.raises(ExportError, match="brain B02: .* no surface mesh of its current graph for model m1"):
        meshes_to_export("m1", HASHES, mesh)


def result(model="m1", clusters=((10, 0.5, 0.6),)):
    r = ModelResult(model, graphs(model=model))
    scores = {"test_macro_f1": 0.25, "transfer_macro_f1": 0.5}
    r.seed_scores = {"pmap-argmax": [scores], "linear": [scores]}
    r.clusters = [{"k": k, "ari": a, "nmi": n} for k, a, n in clusters]
    return r


def test_the_evaluation_run_changes_with_any_model_graph_or_setting_only():
    base = evaluation_run({"m1": HASHES}, CFG)
    assert base == evaluation_run({"m1": dict(HASHES)}, ELSEWHERE) and base.startswith("eval-")
    assert evaluation_run({"m1": {**HASHES, "B02": "x"}}, CFG) != base
    assert evaluation_run({"m1": HASHES, "m2": HASHES}, CFG) != base
    assert evaluation_run({"m1": HASHES}, with_gnn(seed=CFG.gnn.seed + 1)) != base
    other = CFG.model_copy(update={"evaluate": CFG.evaluate.model_copy(update={"clusters": (3,)})})
    assert evaluation_run({"m1": HASHES}, other) != base


def test_a_new_evaluation_commits_each_model_baseline_and_clustering_once():
    rows = metrics_to_commit("eval-1", [result("m1"), result("m2", ((10, 0.1, 0.2), (20, 0.3, 0.4)))], False)
    got = sorted(zip(rows["model_version"].to_pylist(), rows["stage"].to_pylist(), rows["split"].to_pylist(),
                     rows["metric"].to_pylist(), rows["value"].to_pylist()))
    assert set(rows["run_id"].to_pylist()) == {"eval-1"}
    assert [g for g in got if g[0] == "m2" and g[1] == "clustering"] == [
        ("m2", "clustering", "all", "ari_k10", 0.1), ("m2", "clustering", "all", "ari_k20", 0.3),
        ("m2", "clustering", "all", "nmi_k10", 0.2), ("m2", "clustering", "all", "nmi_k20", 0.4)]
    assert [g for g in got if g[0] == "m1" and g[1] == "linear"] == [
        ("m1", "linear", "test", "macro_f1", 0.25), ("m1", "linear", "transfer", "macro_f1", 0.5)]
    assert rows.num_rows == len(set(got)) == 2 * 4 + 2 + 4  # two baselines x two splits per model; one ari, one nmi per k


def test_an_evaluation_whose_metrics_are_committed_commits_nothing():
    assert metrics_to_commit("eval-1", [result()], committed=True) is None


def test_overall_progress_counts_stages_and_estimates_the_time_left():
    from cytolake.eval.progress import Stages

    now = [100.0]
    lines = []
    stages = Stages("evaluate", 4, lines.append, clock=lambda: now[0])
    stages("model a: the atlas alone")
    now[0] += 30
    stages("model a: GNN seed 0")
    now[0] += 30
    stages("model a: GNN+ seed 0")
    assert lines[0] == "evaluate: stage 1 of 4: model a: the atlas alone (0:00 elapsed)"
    assert lines[1] == "evaluate: stage 2 of 4: model a: GNN seed 0 (0:30 elapsed, about 1:30 left)"
    assert lines[2] == "evaluate: stage 3 of 4: model a: GNN+ seed 0 (1:00 elapsed, about 1:00 left)"
