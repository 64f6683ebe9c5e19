"""A 2-process gloo step equals one process on the concatenated batch (loss and parameter update)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cytolake.train.model import Encoder

HELPER = Path(__file__).parent / "helpers" / "dist_step.py"

pytestmark = pytest.mark.slow  # torchrun and horovodrun launch processes of their own
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def run(args, out):
    r = subprocess.run([*args, str(HELPER), str(out)] + (["--naive-gather"] if "naive" in out.name else []),
                       env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return torch.load(out)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return run([sys.executable], tmp_path_factory.mktemp("d") / "single.pt")


def torchrun(out):
    return run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], out)


def test_torchrun_two_processes_equal_one_process(single, tmp_path):
    two = torchrun(tmp_path / "two.pt")
    assert single["world"] == 1 and two["world"] == 2
    assert abs(two["loss"] - single["loss"]) < 1e-5
    assert torch.allclose(two["params"], single["params"], atol=1e-6, rtol=0)
    torch.manual_seed(0)
    before = torch.nn.utils.parameters_to_vector(Encoder(norm="group").parameters())
    assert not torch.allclose(single["params"], before, atol=1e-4)  # the step did move the parameters


def test_the_naive_gather_would_be_caught(single, tmp_path):
    bad = torchrun(tmp_path / "naive.pt")
    assert abs(bad["loss"] - single["loss"]) < 1e-5  # same forward ...
    assert not torch.allclose(bad["params"], single["params"], atol=1e-6, rtol=0)  # ... wrong update


@pytest.mark.skipif(importlib.util.find_spec("horovod") is None, reason="horovod is not installed")
def test_horovodrun_two_processes_equal_one_process(single, tmp_path):
    horovodrun = str(Path(sys.executable).with_name("horovodrun"))
    two = run([horovodrun, "--gloo", "-np", "2", sys.executable], tmp_path / "hvd.pt")
    assert abs(two["loss"] - single["loss"]) < 1e-5
    assert torch.allclose(two["params"], single["params"], atol=1e-6, rtol=0)
