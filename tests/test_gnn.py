"""GNN, evaluation report and notebooks on a tiny lake built end to end (real Spark, Delta, BigTIFFs)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import torch
import yaml

from cytolake.engines.sql import query
from cytolake.gnn.data import load_graphs
from cytolake.gnn.job import run_train_gnn
from cytolake.gnn.sampling import Csr, sample
from cytolake.gnn.train import fit, predict
from cytolake.lake import Lake
from cytolake.metrics import macro_f1

from conftest import MODELS, ROOT

quiet = dict(log=lambda *a: None)


def test_macro_f1_matches_scikit_learn_and_a_hand_count():
    from sklearn.metrics import f1_score

    y = np.array([0, 0, 1, 1, 2, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0, 5])  # 5: an area absent from the truth
    # per area: 0 -> P 1/2 R 1/2 F 0.5; 1 -> P 2/3 R 1 F 0.8; 2 -> P 1 R 1/3 F 0.5
    assert macro_f1(y, p) == pytest.approx((0.5 + 0.8 + 0.5) / 3)
    assert macro_f1(y, p) == pytest.approx(f1_score(y, p, labels=[0, 1, 2], average="macro"))
    assert np.isnan(macro_f1(y[:0], p[:0]))


def _two_moons_graph(n=120, seed=0):
    """Two classes on a ring graph; each node's own input is noise, its class shows only in its neighbours'."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) // (n // 4)) % 2
    x = rng.normal(size=(n, 8)).astype(np.float32)
    x[:, 0] += np.roll(y, 1) * 2 - 1 + np.roll(y, -1) * 2 - 1
    src = np.r_[np.arange(n), (np.arange(n) + 1) % n]
    dst = np.r_[(np.arange(n) + 1) % n, np.arange(n)]
    return x, src, dst, y.astype(np.int64)


@pytest.mark.parametrize("sampled", [False, True])
def test_the_gat_overfits_a_tiny_graph_full_graph_and_neighbour_sampled(cfg, sampled):
    x, src, dst, y = _two_moons_graph()
    train = np.ones(len(y), bool)
    gnn = cfg.gnn.model_copy(update={"epochs": 150, "patience": 150, "dropout": 0.0, "lr": 0.01, "hidden": 16,
                                   "full_graph_max_nodes": 10 if sampled else 10_000, "batch_nodes": 32})
    fitted = fit(x, src, dst, y, train, train, 2, gnn, **quiet)
    assert fitted.sampled == sampled
    assert max(h["train_f1"] for h in fitted.history) == 1.0


@pytest.mark.parametrize("sampled", [False, True])
def test_gnn_plus_starts_from_the_pmap_prior_where_the_features_say_nothing(cfg, sampled):
    """Inputs are noise and the labels follow the pmap: with the prior the GAT predicts unseen nodes from the
    first epoch on; without it, it cannot."""
    from types import SimpleNamespace

    from cytolake.gnn.train import node_prior

    rng = np.random.default_rng(0)
    n, k = 400, 5
    x, src, dst, _ = _two_moons_graph(n)
    pmap = rng.dirichlet(np.full(k, 0.3), n).astype(np.float32)
    y = pmap.argmax(1)
    prior = node_prior(SimpleNamespace(class_pmap=pmap), "gnn+")
    assert node_prior(SimpleNamespace(class_pmap=pmap), "gnn") is None
    assert np.array_equal(prior.argmax(1), y) and np.allclose(np.exp(prior).sum(1), 1, atol=1e-5)
    train = np.arange(n) < n // 2
    gnn = cfg.gnn.model_copy(update={"epochs": 1, "patience": 1, "hidden": 8, "dropout": 0.0,
                                   "full_graph_max_nodes": 10 if sampled else 10_000, "batch_nodes": 64})
    with_prior = fit(x, src, dst, y, train, ~train, k, gnn, prior=prior, **quiet)
    without = fit(x, src, dst, y, train, ~train, k, gnn, **quiet)
    assert with_prior.history[1]["val_f1"] > 0.6 > 0.4 > without.history[1]["val_f1"]


def test_gnn_plus_starts_exactly_at_its_prior_and_keeps_it_unless_validation_improves(cfg):
    """The correction branch starts at zero: epoch 0 predicts the pmap argmax on every node, and is the
    model kept when no epoch beats it on the validation nodes (here it cannot: labels = pmap argmax)."""
    from types import SimpleNamespace

    from cytolake.gnn.model import GAT
    from cytolake.gnn.train import node_prior, predict

    rng = np.random.default_rng(1)
    n, k = 300, 6
    x, src, dst, _ = _two_moons_graph(n)
    pmap = rng.dirichlet(np.full(k, 0.5), n).astype(np.float32)
    prior = node_prior(SimpleNamespace(class_pmap=pmap), "gnn+")
    ei = torch.from_numpy(np.stack([src, dst])).long()
    untrained = GAT(x.shape[1], k, 8, 2, 3, 0.0, zero_output=True)
    assert np.array_equal(predict(untrained, torch.from_numpy(x), ei, torch.from_numpy(prior)).argmax(1), pmap.argmax(1))
    y = pmap.argmax(1)
    train = np.arange(n) < n // 2
    gnn = cfg.gnn.model_copy(update={"epochs": 15, "patience": 15, "hidden": 8, "lr": 0.05})
    fitted = fit(x, src, dst, y, train, ~train, k, gnn, prior=prior, **quiet)
    assert fitted.history[0]["epoch"] == 0 and fitted.history[0]["val_f1"] == 1.0
    assert np.isclose(fitted.history[0]["val_loss"], -np.mean(prior[~train, y[~train]]), atol=1e-4)
    assert fitted.best_epoch == 0 and len(fitted.history) == 16
    final = predict(fitted.model, torch.from_numpy(x), ei, torch.from_numpy(prior)).argmax(1)
    assert np.array_equal(final, y)


def test_neighbour_sampling_returns_seeds_first_and_only_real_edges():
    src = torch.tensor([0, 1, 1, 2, 2, 3, 3, 4])
    dst = torch.tensor([1, 0, 2, 1, 3, 2, 4, 3])
    nodes, ei = sample(Csr.from_edges(src, dst, 5), torch.tensor([2]), (2, 2), torch.Generator().manual_seed(0))
    assert nodes[0] == 2 and len(set(nodes.tolist())) == len(nodes)
    real = set(zip(src.tolist(), dst.tolist()))
    assert {(int(nodes[a]), int(nodes[b])) for a, b in ei.t().tolist()} <= real


@pytest.mark.slow
def test_predictions_cover_every_node_and_a_rerun_trains_nothing(evaluated):
    cfg, _, results = evaluated
    lake = Lake(cfg.paths.lake)
    for r in results:
        gs = load_graphs(lake, r.model_version, merge_hemispheres=cfg.atlas.merge_hemispheres)
        assert cfg.atlas.merge_hemispheres and len(gs.classes) == 52  # the test config scores merged classes
        for rid in (rid for ids in r.runs.values() for rid in ids):
            got = query(lake, f"SELECT count(*) AS n, count(DISTINCT brain_id || '/' || node_id) AS u, "
                              f"min(len(probabilities)) AS c FROM predictions WHERE run_id = '{rid}'").to_pylist()[0]
            assert got["n"] == got["u"] == len(gs) and got["c"] == len(gs.classes)
        # predictions are stored as areas: of the predicted class, the hemisphere whose map is larger at the node
        stored = query(lake, f"SELECT predicted FROM predictions WHERE run_id = '{r.runs['gnn+'][0]}' "
                             "ORDER BY brain_id, node_id")["predicted"].to_numpy()
        assert np.array_equal(gs.classes.of_area[stored], r.predicted["gnn+"])
        members = gs.classes.of_area[None, :] == gs.classes.of_area[stored][:, None]
        assert np.all(gs.pmap[np.arange(len(gs)), stored] >= np.where(members, gs.pmap, 0).max(1))
        # each GNN run's curves and the evaluation's scores in TensorBoard, beside the encoder's log
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        board = cfg.paths.models / r.model_version / "tensorboard"
        for rid in r.runs["gnn"] + r.runs["gnn+"]:
            events = EventAccumulator(str(board / rid)).Reload()
            assert len(events.Scalars("gnn/val_f1")) >= 2 and events.Scalars("macro_f1/test")[0].value == \
                pytest.approx(r.seed_scores["gnn+" if rid.startswith("gnnplus") else "gnn"][
                    (r.runs["gnn+"] if rid.startswith("gnnplus") else r.runs["gnn"]).index(rid)]["test_macro_f1"])
        evaluations = [d for d in board.iterdir() if d.name.startswith("eval-")]
        assert evaluations and EventAccumulator(str(evaluations[0])).Reload().Scalars("macro_f1/pmap-argmax/test")
    v = lake.version("predictions"), lake.version("metrics")
    again = run_train_gnn(cfg, MODELS[0], "gnn+", **quiet)
    assert not again.trained and (lake.version("predictions"), lake.version("metrics")) == v
    stored = query(lake, f"SELECT split, value FROM metrics WHERE run_id = '{again.run_id}' AND metric = 'macro_f1'").to_pylist()
    assert {r["split"]: r["value"] for r in stored}["test"] == pytest.approx(again.scores["test_macro_f1"])


@pytest.mark.slow
def test_gnn_plus_is_trained_and_predicts_with_the_pmap_prior(evaluated):
    """`run_train_gnn` hands GNN+ the pmap prior (what `fit` does with it is tested above). GNN+ starts exactly
    at the prior, so a run whose paired-bootstrap selection kept epoch 0 (its `metrics.details.best_epoch`)
    predicts the prior's argmax on every node; GNN, which never sees the pmap, agrees with the prior less
    than GNN+ does."""
    cfg, _, results = evaluated
    lake = Lake(cfg.paths.lake)
    for r in results:
        rid = r.runs["gnn+"][0]  # the run of the first GNN seed, whose predictions r.predicted["gnn+"] holds
        details = lake.read("metrics", ["details"], filters=pc.field("run_id") == rid)["details"].to_pylist()
        kept = {json.loads(d)["best_epoch"] for d in details}
        assert len(kept) == 1, (rid, kept)
        follows = {k: float(np.mean(r.predicted[k] == r.predicted["pmap-argmax"])) for k in ("gnn", "gnn+")}
        if kept == {0}:
            assert follows["gnn+"] == 1.0, (r.model_version, follows)
        assert follows["gnn"] < follows["gnn+"], (r.model_version, kept, follows)


@pytest.mark.slow
def test_the_report_and_its_images_are_written(evaluated):
    cfg, path, results = evaluated
    text = path.read_text()
    images = [line.split("(")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert len(images) >= 4 and all((path.parent / i).stat().st_size > 5000 for i in images)
    assert all(m in text for m in MODELS) and "ARI" in text
    # the pmap vector alone predicts areas far above chance on data built from those pmaps
    assert results[0].mean("pmap-argmax", "transfer_macro_f1") > 0.2
    # the poster's table: a row per feature model, linear / GNN / GNN+ on test and transfer, mean ± sd over seeds
    assert "| features | linear test | linear transfer | GNN test | GNN transfer | GNN+ test | GNN+ transfer |" in text
    assert "| cont-pmap (`test-contrastive`) |" in text and "| random-init (`random-init`) |" in text
    assert "| pmap-argmax (atlas alone, no image) |" in text and " ± " in text
    assert all(len(r.runs[k]) == len(cfg.evaluate.gnn_seeds) == 2 for r in results for k in ("gnn", "gnn+"))
    assert "Calibration" in text and "encoder_loss.png" in text
    assert "Classes scored: 52 classes (areas with both hemispheres merged)" in text
    assert "## GNN+ against the atlas alone" in text and "test " in text.split("## GNN+ against the atlas alone")[1]


def _run_notebook(name: str, config: Path) -> None:
    """The documented command (reference.md, Notebooks): `.venv/bin/jupyter execute notebooks/NAME`."""
    env = {**os.environ, "CYTOLAKE_CONFIG": str(config), "PYTHONPATH": str(ROOT / "lib")}
    r = subprocess.run([str(Path(sys.prefix) / "bin" / "jupyter"), "execute", f"notebooks/{name}"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-5000:]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["explore_lake.ipynb", "evaluation.ipynb"])
def test_notebooks_run_on_the_lake(evaluated, tmp_path, name):
    cfg, _, _ = evaluated
    conf = tmp_path / "nb.yaml"
    conf.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude={"source"})))
    _run_notebook(name, conf)


def test_model_selection_keeps_the_best_epoch_only_when_it_beats_epoch_0_on_a_paired_bootstrap(cfg):
    """The kept weights are those of the best validation epoch when the paired bootstrap puts its gain over
    epoch 0 above zero at one-sided 95 % (not the last epoch, not the lowest validation loss)."""
    rng = np.random.default_rng(2)
    n = 400
    x, src, dst, y = _two_moons_graph(n)
    train = rng.random(n) < 0.5
    gnn = cfg.gnn.model_copy(update={"epochs": 25, "patience": 25, "hidden": 8, "dropout": 0.0})
    fitted = fit(x, src, dst, y, train, ~train, 2, gnn, **quiet)
    f1 = [h["val_f1"] for h in fitted.history]
    kept = fitted.best_epoch
    assert kept == int(np.argmax(f1)) and kept > 0 and fitted.val_gain_low > 0
    final = predict(fitted.model, torch.from_numpy(x), torch.from_numpy(np.stack([src, dst])).long()).argmax(1)
    assert macro_f1(y[~train], final[~train]) == f1[kept]


def test_the_paired_selection_rule_and_its_bootstrap():
    from cytolake.gnn.train import selected_epoch
    from cytolake.metrics import paired_differences, paired_interval, resampled_macro_f1

    rng = np.random.default_rng(0)

    def noisy(y, accuracy):
        return np.where(rng.random(len(y)) < accuracy, y, (y + 1) % 5)

    y = rng.integers(0, 5, 400)
    prior, better, level = noisy(y, 0.6), noisy(y, 0.8), noisy(y, 0.6)
    assert selected_epoch(y, [prior, better], seed=0)[0] == 1  # a clear gain leaves epoch 0
    kept, low = selected_epoch(y, [prior, prior.copy(), level], seed=0)
    assert kept == 0  # a lead within the noise keeps the prior
    # a single changed node is a lead that no paired bootstrap can call positive at 95 %
    one = prior.copy()
    one[np.flatnonzero(one != y)[0]] = y[np.flatnonzero(one != y)[0]]
    assert selected_epoch(y, [prior, one], seed=0)[0] == 0
    assert selected_epoch(y[:0], [prior[:0], better[:0]], seed=0)[0] == 0  # no validation nodes: nothing to select on
    # without a prior epoch 0 is an untrained network: the best later epoch is kept, even within the noise
    assert selected_epoch(y, [prior, one], seed=0, prior=False)[0] == 1
    assert selected_epoch(y, [better, level, prior], seed=0, prior=False)[0] == 1 + int(macro_f1(y, prior) > macro_f1(y, level))
    # the paired interval: identical predictions differ by exactly 0; a better one lies above 0
    assert paired_interval(y, prior, prior) == (0.0, 0.0)
    lo, hi = paired_interval(y, better, prior)
    assert 0 < lo < hi
    d = paired_differences(y, np.stack([better, prior]), prior, seed=1, resamples=50)
    assert np.allclose(d, paired_differences(y, better, prior, seed=1, resamples=50) / 2)  # the mean over rows
    idx = rng.integers(0, 400, (20, 400))
    assert np.allclose(resampled_macro_f1(y, prior, idx), [macro_f1(y[i], prior[i]) for i in idx])  # sklearn's
    y2, pred2 = rng.integers(0, 30, 200), rng.integers(0, 35, 200)  # many areas, some predicted but never true
    idx = rng.integers(0, 200, (20, 200))
    assert np.allclose(resampled_macro_f1(y2, pred2, idx), [macro_f1(y2[i], pred2[i]) for i in idx])


def test_the_section_bootstrap_resamples_whole_sections_and_widens_the_interval():
    """The report's interval resamples whole sections: each draw is a union of complete sections, and where a
    gain sits in some sections and a loss in others, the interval spans zero although a node bootstrap, which
    treats the sections' nodes as independent, puts it clearly off zero."""
    from cytolake.metrics import group_resamples, paired_interval

    rng = np.random.default_rng(0)
    sections = np.repeat(np.array([f"B01/{i}" for i in range(6)]), 100)
    for draw in group_resamples(sections, seed=0, resamples=20):
        counts = {s: int((sections[draw] == s).sum()) for s in np.unique(sections[draw])}
        assert all(c % 100 == 0 for c in counts.values())  # every section drawn comes with all its nodes
        assert len(draw) == len(sections)  # six sections of 100 nodes a draw
    y = rng.integers(0, 5, len(sections))
    base = np.where(rng.random(len(y)) < 0.6, y, (y + 1) % 5)
    # far better than base on four sections, far worse on two: a mean gain, but one that varies between sections
    lost = np.isin(sections, ["B01/4", "B01/5"])
    better = np.where(rng.random(len(y)) < np.where(lost, 0.1, 0.95), y, (y + 2) % 5)
    node_lo, node_hi = paired_interval(y, better, base)
    sec_lo, sec_hi = paired_interval(y, better, base, groups=sections)
    assert node_lo > 0  # nodes as independent draws: a clear gain
    assert sec_lo < 0 < sec_hi  # sections as the unit: within their spread
    assert paired_interval(y, base, base, groups=sections) == (0.0, 0.0)
    assert np.isnan(paired_interval(y, better, base, groups=np.zeros(len(y)))).all()  # one section: no spread to draw
    # within strata (brains), each draw keeps every brain's number of sections
    brain = np.where(np.isin(sections, ["B01/0", "B01/1"]), "B02", "B01")
    for draw in group_resamples(sections, seed=1, resamples=50, strata=brain):
        assert (brain[draw] == "B02").sum() == 200 and (brain[draw] == "B01").sum() == 400


def test_per_brain_standardisation_removes_a_brain_wide_shift_of_the_image_features():
    """Two brains whose patches are the same but for a brain-wide offset and gain (staining): with
    `gnn.standardise: per_brain` their nodes get the same image inputs, the unseen brain's too; pooled, the
    offset stays. The pmap and coordinates (GNN+'s atlas inputs) are not standardised per brain."""
    from cytolake.atlas.classes import classes_of
    from cytolake.gnn.data import GraphSet
    from cytolake.gnn.train import node_inputs

    rng = np.random.default_rng(0)
    n = 60
    base = rng.normal(size=(n, 8)).astype(np.float32)
    features = np.r_[base, base * 1.3 + 2.0]  # the second brain: stained darker
    brain = np.array(["B01"] * n + ["B03"] * n)
    pmap, canonical = rng.random((2 * n, 3)).astype(np.float32), rng.normal(size=(2 * n, 3)).astype(np.float32)
    canonical[n:] += 5.0  # the unseen brain lies elsewhere in the atlas: a real difference, kept
    gs = GraphSet("m", brain, np.arange(2 * n), np.zeros(2 * n), np.where(brain == "B03", "transfer", "train"),
                  np.arange(2 * n) % 3, features, pmap, canonical, np.zeros(2 * n), np.zeros(2 * n), np.zeros(0),
                  np.zeros(0), {}, classes_of([{"area_index": i, "name": str(i), "hemisphere": "B", "label": str(i)}
                                               for i in range(3)], False), np.arange(2 * n) % 3)
    per, pooled = node_inputs(gs, "gnn", "per_brain"), node_inputs(gs, "gnn", "pooled")
    assert np.allclose(per[:n], per[n:], atol=1e-4)
    assert not np.allclose(pooled[:n], pooled[n:], atol=0.1)
    plus = node_inputs(gs, "gnn+", "per_brain")
    k = per.shape[1]
    assert np.allclose(plus[:n, :k], plus[n:, :k], atol=1e-4)
    assert plus[n:, -3:].mean() > plus[:n, -3:].mean() + 1  # the coordinates keep the brains apart


def test_validation_folds_rotate_over_the_annotated_training_sections_with_the_seed():
    from cytolake.atlas.classes import classes_of
    from cytolake.gnn.data import GraphSet
    from cytolake.gnn.train import split_masks

    sections = np.repeat(np.arange(10), 20)
    n = len(sections)
    gs = GraphSet("m", np.array(["B01"] * n), np.arange(n), sections, np.array(["train"] * n), np.arange(n) % 3,
                  np.zeros((n, 2)), np.zeros((n, 3)), np.zeros((n, 3)), np.zeros(n), np.zeros(n), np.zeros(0),
                  np.zeros(0), {}, classes_of([{"area_index": i, "name": str(i), "hemisphere": "B", "label": str(i)} for i in range(3)],
                                              False), np.arange(n) % 3)
    folds = [split_masks(gs, 0.2, seed)[1] for seed in range(5)]
    held = [set(sections[v].tolist()) for v in folds]
    assert all(len(h) == 2 for h in held)  # 10 sections, 5 folds: whole sections
    assert set().union(*held) == set(range(10)) and sum(len(h) for h in held) == 10  # disjoint, covering
    train, val = split_masks(gs, 0.2, 5)
    assert np.array_equal(val, folds[0]) and not (train & val).any()  # seed 5 is fold 0 again


def test_merged_hemispheres_make_one_class_per_area_name():
    from cytolake.atlas.classes import classes_of
    from cytolake.atlas.pmaps import Area

    areas = [{"area_index": a.area_index, "name": a.name, "hemisphere": a.hemisphere, "label": a.label} for a in (
        Area(0, 0, "hOc1", "L"), Area(1, 1, "hOc1", "R"), Area(2, 2, "Mamillary_body", "B"), Area(3, 3, "hOc2", "L"),
        Area(4, 4, "hOc2", "R"))]  # rows as `Atlas.areas_table` writes them
    split, merged = classes_of(areas, False), classes_of(areas, True)
    assert split.names == ("hOc1_L", "hOc1_R", "Mamillary_body", "hOc2_L", "hOc2_R") and len(merged) == 3
    assert merged.names == ("hOc1", "Mamillary_body", "hOc2") and merged.of_area.tolist() == [0, 0, 1, 2, 2]
    p = np.array([[0.3, 0.5, 0.0, 0.1, 0.1], [0.0, 0.0, 0.2, 0.0, 0.0]], np.float32)
    assert np.allclose(merged.pmap(p), [[0.8, 0.0, 0.2], [0.0, 0.2, 0.0]])
    assert np.allclose(split.pmap(p), p)
    assert merged.label(np.array([1, -1, 4, 2])).tolist() == [0, -1, 2, 1]
    # a predicted class goes back to the area of the hemisphere whose map is larger at the node
    assert merged.area_of(np.array([0, 2]), p).tolist() == [1, 3]
    # where both of the class's maps are zero, the hemisphere holding more of the node's probability
    off = np.array([[0.0, 0.0, 0.1, 0.0, 0.6], [0.0, 0.0, 0.1, 0.5, 0.0]], np.float32)
    assert merged.area_of(np.array([0, 0]), off).tolist() == [1, 0]
    assert "merged" in merged.description and "52" not in split.description


def test_gnn_plus_corrects_only_the_classes_it_has_labels_for(cfg):
    """Classes 2 and 3 have no training label: their logits stay the (weighted) prior, where an unmasked
    correction pushes them down with every step. `fit` hands the GAT the classes of its training nodes."""
    from cytolake.gnn.model import GAT

    rng = np.random.default_rng(4)
    n, k = 300, 4
    x, src, dst, y = _two_moons_graph(n)  # labels 0 and 1 only
    prior = torch.from_numpy(np.log(rng.dirichlet(np.ones(k), n)).astype(np.float32))
    xt, ei, yt = torch.from_numpy(x), torch.from_numpy(np.stack([src, dst])).long(), torch.from_numpy(y)

    def trained(correctable):
        torch.manual_seed(0)
        model = GAT(x.shape[1], k, 8, 2, 2, 0.0, zero_output=True, correctable=correctable)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(15):
            loss = torch.nn.functional.cross_entropy(model(xt, ei, prior), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return (model(xt, ei, prior) - model.prior_weight * prior).numpy()

    masked, unmasked = trained(torch.tensor([1.0, 1.0, 0.0, 0.0])), trained(None)
    assert np.all(masked[:, 2:] == 0) and np.abs(masked[:, :2]).mean() > 0.1
    assert unmasked[:, 2:].mean() < -0.1  # what the mask prevents
    gnn = cfg.gnn.model_copy(update={"epochs": 2, "patience": 2, "hidden": 8})
    fitted = fit(x, src, dst, y, np.arange(n) < 200, np.arange(n) >= 200, k, gnn, prior=prior.numpy(), **quiet)
    assert fitted.model.correctable.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert fit(x, src, dst, y, np.arange(n) < 200, np.arange(n) >= 200, k, gnn, **quiet).model.correctable is None
