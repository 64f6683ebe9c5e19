"""Contrastive and supervised training end to end on a tiny tiled lake (resume after SIGKILL: tests/reliability)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cytolake.eval.probe import probe_table, run_probe
from cytolake.lake import Lake
from cytolake.train.dist import Single
from cytolake.train.model import LAYOUTS, Encoder, ensure_random_encoder, load_encoder, with_layout
from cytolake.train.job import run_train_contrastive

from conftest import ROOT, losses, with_train


def parameters(enc) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in enc.named_parameters()}


def test_training_moves_every_layer_from_its_seeded_start_and_writes_its_outputs(tiled_lake):
    cfg = with_train(tiled_lake, model_version="run-a")
    out = run_train_contrastive(cfg, Single(), log=lambda *a: None)
    assert (out / "encoder.pt").is_file() and (out / "config.json").is_file()
    assert any((out / "tensorboard").iterdir())
    l = losses(out)
    assert sorted(l) == list(range(1, 7))
    # a batch where no two patches share any pmap mass has no valid anchor: loss 0, never NaN
    # (how many of the 6 batches have one depends on which patches the shuffle puts together)
    assert all(v == v and v >= 0 for v in l.values()) and any(v > 0 for v in l.values())
    trained = load_encoder(out)
    assert trained.features(torch.zeros(2, 1, 16, 16)).shape == (2, 512)  # conf/test.yaml: train.backbone resnet18
    # the start: the architecture seeded from train.seed (the random-init baseline); another seed: another start
    ensure_random_encoder(cfg, Path(cfg.paths.models) / "start")
    ensure_random_encoder(with_train(cfg, seed=cfg.train.seed + 1), Path(cfg.paths.models) / "other-start")
    start, other, now = (parameters(load_encoder(Path(cfg.paths.models) / m)) for m in ("start", "other-start", "run-a"))
    moved = {k for k in start if not torch.equal(now[k], start[k])}
    assert moved == set(start)  # every layer learned, the stem as well as the projection head
    dist = lambda a, b: float(torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a)))  # noqa: E731
    assert dist(now, start) < 0.5 * dist(other, start)  # ... from the seeded start, not from somewhere else


def test_probe_scores_a_saved_encoder_and_random_init_on_the_same_patches(tiled_lake):
    out = Path(tiled_lake.paths.models) / "probe-me"
    ensure_random_encoder(tiled_lake, out)
    results, path = run_probe(tiled_lake, "probe-me", max_samples=400)
    assert json.loads(path.read_text()) == results and set(results) == {"probe-me", "random-init"}
    mine, rnd = results["probe-me"], results["random-init"]
    assert mine["classes"] >= 5 and mine["train_samples"] > 50
    # "probe-me" is the random-init architecture from the same seed, so the same weights: scored on the same
    # patches, every count and every score must come out equal (a NaN score would not equal itself)
    assert set(mine) == set(rnd) and {k for k in mine if k.endswith("macro_f1")} >= {"linear_test_macro_f1", "knn_transfer_macro_f1"}
    for k in mine:
        assert mine[k] == rnd[k], k
    assert "probe-me" in probe_table(results) and "knn_transfer_macro_f1" in probe_table(results)


def test_supervised_objective_trains_the_same_encoder_on_labelled_patches(tiled_lake):
    cfg = with_train(tiled_lake, model_version="sup", objective="supervised", max_steps=4, lr=0.01)
    out = run_train_contrastive(cfg, Single(), log=lambda *a: None)
    l = losses(out)
    assert sorted(l) == [1, 2, 3, 4] and all(v == v and v > 0 for v in l.values())
    # step 1's loss is the untrained classifier's, near uniform over the areas: cross-entropy near log(areas)
    n_areas = Lake(cfg.paths.lake).read("areas").num_rows
    assert l[1] == pytest.approx(np.log(n_areas), rel=0.25)
    enc = load_encoder(out)
    assert enc.features(torch.zeros(2, 1, 16, 16)).shape == (2, 512)


def test_contrastive_label_objective_is_the_pmap_loss_on_one_hot_labels(tiled_lake):
    """cont-sup: labelled patches only, p = one-hot label, so two patches are positives exactly when they
    share an area (SupCon)."""
    from cytolake.train.dist import Single as One
    from cytolake.train.loss import pmap_contrastive_loss

    cfg = with_train(tiled_lake, model_version="cont-sup", objective="contrastive-label", max_steps=3)
    out = run_train_contrastive(cfg, One(), log=lambda *a: None)
    l = losses(out)
    assert sorted(l) == [1, 2, 3] and all(v == v and v >= 0 for v in l.values())
    assert json.loads((out / "config.json").read_text())["train"]["objective"] == "contrastive-label"
    z = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    onehot = torch.nn.functional.one_hot(labels, 3).float()
    # with one-hot p the weights are 1 within an area and 0 across: SupCon over the same-area pairs
    logits = (z @ z.T) / 0.1
    logits.fill_diagonal_(float("-inf"))
    logp = logits - torch.logsumexp(logits, 1, keepdim=True)
    partner = torch.tensor([1, 0, 3, 2, 5, 4])
    supcon = -logp[torch.arange(6), partner].mean()
    assert pmap_contrastive_loss(z, onehot, 0.1, include_self_weight=False) == pytest.approx(float(supcon), rel=1e-5)


def test_backbone_is_chosen_by_torchvision_name():
    from cytolake.train.model import Encoder

    assert Encoder(backbone="resnet18").feature_dim == 512
    assert Encoder(backbone="resnet50", head_downsample=2).features(torch.zeros(2, 1, 32, 32)).shape == (2, 2048)
    with pytest.raises(ValueError, match="unknown backbone"):
        Encoder(backbone="vgg11")


@pytest.mark.parametrize("objective", ["contrastive", "supervised"])
def test_the_training_step_lowers_the_loss_on_a_batch_it_sees_again(objective):
    """The trainer's own step (model, optimiser, schedule, loss) learns: on one fixed batch of patches whose
    area shows in the image (four textures, one per area; pmap vectors peaked on the patch's area), the
    loss after 30 steps is well under the first step's. No lake and no Spark: the step alone."""
    from cytolake.config import load_config
    from cytolake.atlas.classes import classes_of
    from cytolake.train.trainer import _step, _targets, new_learner

    t = load_config(ROOT / "conf" / "test.yaml").train.model_copy(update={"objective": objective, "lr": 1e-3})
    gen = torch.Generator().manual_seed(0)
    area = torch.arange(32) % 4
    base = torch.tensor([40.0, 100.0, 160.0, 220.0])[area].view(-1, 1, 1)
    stripes = (torch.arange(16).view(1, 1, 16) % (area.view(-1, 1, 1) + 2) == 0) * 30.0
    image = (base + stripes + 10 * torch.randn(32, 16, 16, generator=gen)).clamp(0, 255).to(torch.uint8)
    # near one-hot: the pmap loss can then fall from ~log(31) = 3.4 (any untrained embedding) towards the
    # entropy of its targets, ~2.0 (7 same-area partners each); soft pmaps would raise that floor to ~3.1
    pmap = torch.nn.functional.one_hot(area, 4).float() * 0.96 + 0.01
    batch = {"image": image, "pmap": pmap, "label": area, "step": torch.tensor(0)}
    learner = new_learner(t, 4, 40, torch.device("cpu"))
    areas = _targets(classes_of([{"area_index": i, "name": f"a{i}", "hemisphere": "B", "label": f"a{i}"} for i in range(4)], False),
                     torch.device("cpu"))
    losses_ = [float(_step(learner, t, batch, 0, areas, None, Single(), torch.device("cpu"), None)) for _ in range(30)]
    assert np.mean(losses_[-3:]) < 0.8 * losses_[0], losses_


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_memory_layout_computes_the_same_features(layout):
    """The layouts of `with_layout` change where the convolutions' data lies, never what they compute; the
    input head's weights stay in the default layout exactly when the layout is `backbone`."""
    torch.manual_seed(0)
    model = Encoder(head_downsample=4, backbone="resnet18").eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        expected = model.features(x)
        with_layout(model, layout)
        got = model.features(x.contiguous(memory_format=model.input_layout))
    assert torch.allclose(got, expected, atol=1e-5)
    head_cl = model.head.layers[3].weight.is_contiguous(memory_format=torch.channels_last)
    backbone_cl = model.backbone.layer1[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert (head_cl, backbone_cl) == {"channels_last": (True, True), "backbone": (False, True),
                                      "contiguous": (False, False)}[layout]
    with pytest.raises(ValueError, match="unknown layout"):
        with_layout(model, "nhwc")


def test_a_run_resumed_after_a_kill_lists_each_step_once_in_metrics_csv(tiled_lake):
    """A run killed between two checkpoints has logged steps its checkpoint does not hold; resumed, it does them
    again. metrics.csv (the report's loss curves) follows the checkpoint: each step once, its last value."""
    import csv
    import shutil

    cfg = with_train(tiled_lake, model_version="resumed-twice", max_steps=4, checkpoint_every=2)
    out = Path(cfg.paths.models) / "resumed-twice"
    run_train_contrastive(with_train(cfg, max_steps=2), Single(), log=lambda *a: None)
    shutil.copy(out / "checkpoint.pt", out / "at-step-2.pt")
    run_train_contrastive(cfg, Single(), log=lambda *a: None)  # steps 3 and 4 logged, checkpoint at 4
    shutil.copy(out / "at-step-2.pt", out / "checkpoint.pt")  # as a kill before that checkpoint leaves it
    run_train_contrastive(cfg, Single(), log=lambda *a: None)
    steps = [int(r["step"]) for r in csv.DictReader(open(out / "metrics.csv"))]
    assert steps == [1, 2, 3, 4]


def test_a_finished_run_run_again_writes_nothing(tiled_lake):
    """Rerunning a run that reached its last step trains nothing and leaves its folder as it was: no encoder or
    config written again, no new TensorBoard events file."""
    cfg = with_train(tiled_lake, model_version="finished-once", max_steps=2, checkpoint_every=2)
    out = Path(cfg.paths.models) / "finished-once"
    run_train_contrastive(cfg, Single(), log=lambda *a: None)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    said = []
    run_train_contrastive(cfg, Single(), log=said.append)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    assert any("nothing to do" in line for line in said)
