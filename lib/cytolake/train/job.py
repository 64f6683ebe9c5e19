"""The train_contrastive job: plan (`train/plan.py`: the steps left, from the checkpoint), compute (the
training loop, `train/compute.py`) and the result: the encoder saved under `paths.models/<model_version>/`."""

from __future__ import annotations

from pathlib import Path

import torch

from cytolake.atlas.classes import classes_of
from cytolake.atlas.registered import area_rows
from cytolake.config import Settings
from cytolake.lake import Lake
from cytolake.train.compute import Record, new_learner, run_steps
from cytolake.train.model import save_encoder
from cytolake.train.plan import plan_training
from cytolake.train.reader import PatchStream, snapshot_units


def run_train_contrastive(settings: Settings, dist, log=print) -> Path:
    """Train (or resume) the encoder; returns the model folder `paths.models/<model_version>/`."""
    train = settings.train
    torch.manual_seed(train.seed)
    out = Path(settings.paths.models) / train.model_version
    if dist.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    lake = Lake(settings.paths.lake)
    classes = classes_of(area_rows(lake), settings.atlas.merge_hemispheres)
    units = snapshot_units(lake, splits=list(train.splits), brains=list(train.brains) or None,
                           labelled=train.objective != "contrastive")
    stream = PatchStream(units, train.batch_size, dist.rank, dist.world, train.seed, train.shuffle_buffer,
                         drop_last=True)
    device = torch.device(f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu")
    ckpt = out / "checkpoint.pt"
    state = torch.load(ckpt, map_location=device, weights_only=False) if ckpt.is_file() else None
    plan = plan_training(train, stream.batches_per_epoch(), dist.world, None if state is None else state["step"])
    if plan.resume and not plan.segments and (out / "encoder.pt").is_file():
        log(f"{train.model_version}: trained to step {plan.start} of {plan.total} already; nothing to do")
        return out  # every rank: no encoder, config or TensorBoard file written again
    learner = new_learner(train, len(classes), plan.total, device)
    if plan.resume:
        learner.load(state)
        log(f"resuming {train.model_version} at step {plan.start}")
    dist.broadcast_parameters(learner.net)
    record = Record(out, train, plan, dist.world, log) if dist.rank == 0 else None
    if record is not None:
        log(f"training {train.model_version} ({train.objective}): {dist.world} process(es) ({dist.name}), "
            f"{plan.per_epoch} steps/epoch, {plan.total} steps, global batch {train.batch_size * dist.world}, on {device}")
    step = run_steps(learner, train, plan, stream, classes, dist, device, record)
    if record is not None:
        save_encoder(out, learner.model, train, dist.world, step)
        record.writer.close()
        log(f"encoder saved to {out / 'encoder.pt'}")
    dist.barrier()
    return out
