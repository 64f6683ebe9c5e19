"""Training killed with SIGKILL mid-epoch resumes at its step with the same data order."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cytolake.train.dist import Single
from cytolake.train.job import run_train_contrastive

from conftest import ROOT, losses, with_train, write_config

pytestmark = pytest.mark.slow  # the training job runs (and is killed) as its own process


def test_killed_training_resumes_at_its_step_with_the_same_data(tiled_lake, tmp_path):
    ref = run_train_contrastive(with_train(tiled_lake, model_version="straight", max_steps=8), Single(), log=lambda *a: None)
    cfg = with_train(tiled_lake, model_version="killed", max_steps=8)
    conf = write_config(cfg, tmp_path / "train.yaml")
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
    said: list[str] = []  # resumed in this process: what matters is the checkpoint the killed process left
    run_train_contrastive(cfg, Single(), log=lambda *a: said.append(" ".join(map(str, a))))
    assert any(f"resuming killed at step {killed_at}" in s for s in said), said
    got, want = losses(Path(cfg.paths.models) / "killed"), losses(ref)
    assert sorted(got) == sorted(want) == list(range(1, 9))
    for s in want:
        assert abs(got[s] - want[s]) < 1e-3 * max(1.0, abs(want[s])), (s, got[s], want[s])
