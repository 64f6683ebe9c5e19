"""Contrastive training end to end on a tiny tiled lake: outputs, and exact resume after SIGKILL."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from cytolake.ingest.job import run_ingest
from cytolake.tiling.job import run_tile
from cytolake.train.dist import Single
from cytolake.train.trainer import load_encoder, run_train_contrastive

from conftest import ROOT, settings_at


@pytest.fixture(scope="module")
def tiled(tmp_path_factory, synth_landing, spark):
    import shutil

    base = tmp_path_factory.mktemp("train")
    shutil.copytree(synth_landing, base / "landing")
    cfg = settings_at(base)
    run_ingest(cfg, spark, log=lambda *a: None)
    run_tile(cfg, spark, log=lambda *a: None)
    return cfg


def with_train(cfg, **kw):
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=kw)})


def losses(model_dir: Path) -> dict[int, float]:
    rows = list(csv.DictReader(open(model_dir / "metrics.csv")))
    return {int(r["step"]): float(r["loss"]) for r in rows}  # a redone step keeps its last value


def test_training_writes_encoder_config_metrics_and_tensorboard(tiled):
    out = run_train_contrastive(with_train(tiled, model_version="run-a"), Single(), log=lambda *a: None)
    assert (out / "encoder.pt").is_file() and (out / "config.json").is_file()
    assert any((out / "tensorboard").iterdir())
    l = losses(out)
    assert sorted(l) == list(range(1, 7))
    # a batch where no two patches share any pmap mass has no valid anchor: loss 0, never NaN
    assert all(v == v and v >= 0 for v in l.values()) and sum(v > 0 for v in l.values()) >= 4
    enc = load_encoder(out)
    feats = enc.features(torch.zeros(2, 1, 16, 16))
    assert feats.shape == (2, 2048)


def test_killed_training_resumes_at_its_step_with_the_same_data(tiled, tmp_path):
    ref = run_train_contrastive(with_train(tiled, model_version="straight", max_steps=8), Single(), log=lambda *a: None)
    cfg = with_train(tiled, model_version="killed", max_steps=8)
    conf = tmp_path / "train.yaml"
    conf.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude={"source"})))
    cmd = [sys.executable, str(ROOT / "jobs" / "train_contrastive.py"), "--config", str(conf)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    ckpt = Path(cfg.paths.models) / "killed" / "checkpoint.pt"
    deadline = time.time() + 300
    while time.time() < deadline and not (ckpt.is_file() and torch.load(ckpt, weights_only=False)["step"] >= 4):
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-epoch, mid-run
    proc.wait()
    killed_at = torch.load(ckpt, weights_only=False)["step"]
    assert 4 <= killed_at < 8
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"resuming killed at step {killed_at}" in r.stdout
    got, want = losses(Path(cfg.paths.models) / "killed"), losses(ref)
    assert sorted(got) == sorted(want) == list(range(1, 9))
    for s in want:
        assert abs(got[s] - want[s]) < 1e-3 * max(1.0, abs(want[s])), (s, got[s], want[s])


def test_probe_scores_features_on_held_out_sections_and_the_transfer_brain(tiled):
    from cytolake.eval.probe import probe
    from cytolake.lake import Lake
    from cytolake.train.trainer import build_encoder

    torch.manual_seed(0)
    r = probe(build_encoder(tiled.train), Lake(tiled.paths.lake), max_samples=400)
    assert r["classes"] >= 5 and r["train_samples"] > 50
    for k in ("linear_test_macro_f1", "knn_test_macro_f1", "linear_transfer_macro_f1", "knn_transfer_macro_f1"):
        assert 0.0 <= r[k] <= 1.0


def test_supervised_objective_trains_the_same_encoder_on_labelled_patches(tiled):
    cfg = with_train(tiled, model_version="sup", objective="supervised", max_steps=4, lr=0.01)
    out = run_train_contrastive(cfg, Single(), log=lambda *a: None)
    l = losses(out)
    assert sorted(l) == [1, 2, 3, 4] and all(v == v and v > 0 for v in l.values())
    assert l[1] > 1.0  # cross-entropy over ~100 areas starts near log(100), not near the contrastive loss
    enc = load_encoder(out)
    assert enc.features(torch.zeros(2, 1, 16, 16)).shape == (2, 2048)
