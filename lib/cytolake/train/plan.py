"""What a training run does, decided before any tensor exists: how many steps, whether it resumes from a
checkpoint, and which batches of which epochs it still has to see."""

from __future__ import annotations

from dataclasses import dataclass

from cytolake.config import TrainSettings


@dataclass(frozen=True)
class TrainPlan:
    per_epoch: int  # full global batches in one epoch
    total: int  # steps of the whole run
    start: int  # the first step to take: 0, or the checkpoint's step
    resume: bool  # a checkpoint exists: model, optimiser and schedule are loaded from it
    segments: tuple[tuple[int, int, int], ...]  # (epoch, first batch, steps) still to take, in order


def plan_training(train: TrainSettings, per_epoch: int, world: int, checkpoint_step: int | None) -> TrainPlan:
    """`per_epoch`: full batches per epoch over `world` processes; `checkpoint_step`: the step of the run's
    checkpoint, None when it has none. A run resumes at the checkpoint's step in the middle of its epoch,
    at the same batch, since the reader's order is a function of (seed, epoch) alone."""
    if per_epoch == 0:
        raise RuntimeError(f"no full batch of {train.batch_size} x {world} patches in splits {list(train.splits)}: tile first")
    total = min(train.max_steps or per_epoch * train.epochs, per_epoch * train.epochs)
    start = checkpoint_step or 0
    segments, step = [], start
    while step < total:
        epoch, first = divmod(step, per_epoch)
        n = min(per_epoch - first, total - step)
        segments.append((epoch, first, n))
        step += n
    return TrainPlan(per_epoch, total, start, checkpoint_step is not None, tuple(segments))
