"""Contrastive and supervised training end to end on a tiny tiled lake (resume after SIGKILL: tests/reliability)."""

import json
from pathlib import Path

import pytest
import torch

from cytolake.eval.probe import probe_table, run_probe
from cytolake.train.dist import Single
from cytolake.train.model import ensure_random_encoder, load_encoder
from cytolake.train.trainer import run_train_contrastive

from conftest import losses, with_train


def test_training_writes_encoder_config_metrics_and_tensorboard(tiled_lake):
    out = run_train_contrastive(with_train(tiled_lake, model_version="run-a"), Single(), log=lambda *a: None)
    assert (out / "encoder.pt").is_file() and (out / "config.json").is_file()
    assert any((out / "tensorboard").iterdir())
    l = losses(out)
    assert sorted(l) == list(range(1, 7))
    # a batch where no two patches share any pmap mass has no valid anchor: loss 0, never NaN
    assert all(v == v and v >= 0 for v in l.values()) and sum(v > 0 for v in l.values()) >= 4
    enc = load_encoder(out)
    feats = enc.features(torch.zeros(2, 1, 16, 16))
    assert feats.shape == (2, 512)  # conf/test.yaml: train.backbone resnet18


def test_probe_scores_a_saved_encoder_and_random_init_on_test_sections_and_the_transfer_brain(tiled_lake):
    out = Path(tiled_lake.paths.models) / "probe-me"
    ensure_random_encoder(tiled_lake, out)
    results, path = run_probe(tiled_lake, "probe-me", max_samples=400)
    assert json.loads(path.read_text()) == results and set(results) == {"probe-me", "random-init"}
    for r in results.values():
        assert r["classes"] >= 5 and r["train_samples"] > 50
        for k in ("linear_test_macro_f1", "knn_test_macro_f1", "linear_transfer_macro_f1", "knn_transfer_macro_f1"):
            assert 0.0 <= r[k] <= 1.0
    assert "probe-me" in probe_table(results) and "knn_transfer_macro_f1" in probe_table(results)


def test_supervised_objective_trains_the_same_encoder_on_labelled_patches(tiled_lake):
    cfg = with_train(tiled_lake, model_version="sup", objective="supervised", max_steps=4, lr=0.01)
    out = run_train_contrastive(cfg, Single(), log=lambda *a: None)
    l = losses(out)
    assert sorted(l) == [1, 2, 3, 4] and all(v == v and v > 0 for v in l.values())
    assert l[1] > 1.0  # cross-entropy over ~100 areas starts near log(100), not near the contrastive loss
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
