"""The encoder training loop: one step function per objective shared by every launcher, checkpoints with
exact resume (model, optimiser, schedule, step; the reader restarts at the same batch), metrics on rank 0.

Objectives, the poster's three feature models: `contrastive` (cont-pmap: the pmap-weighted loss on every
patch, no labels), `contrastive-label` (cont-sup: the same loss with one-hot label vectors as p, i.e.
SupCon, on the labelled patches) and `supervised` (sup: cross-entropy on the labelled patches through a
linear classifier). The saved encoder has the same architecture either way; the random-initialised
baseline is `model.RANDOM_INIT`."""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cytolake.atlas.classes import Classes
from cytolake.config import TrainSettings
from cytolake.train.augment import Augment, batch_generator
from cytolake.train.loss import anchor_losses
from cytolake.train.model import Encoder, build_encoder, save_atomic, to_input, with_layout
from cytolake.train.plan import TrainPlan
from cytolake.train.reader import PatchStream


def supervised_loss_step(model, classifier, x: torch.Tensor, y: torch.Tensor, dist,
                         autocast_dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the area label on this rank's batch; (loss to backpropagate, global mean loss)."""
    with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        logits = classifier(model.features(x))
    loss = nn.functional.cross_entropy(logits.float(), y)
    return loss, dist.sum(loss.detach()) / dist.world


def contrastive_loss_step(model, x: torch.Tensor, p: torch.Tensor, dist, tau: float, include_self_weight: bool = True,
                          autocast_dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and the distributed pmap loss on this rank's share of the global batch.

    Returns (loss to backpropagate on this rank, the global loss value). The per-rank loss is scaled so
    that averaging the gradients over ranks gives exactly the gradient of the single-process loss on
    the concatenated batch: L = sum of valid anchors' L_i / number of valid anchors, globally.
    """
    with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        _, z = model(x)
    z = z.float()
    z_all, p_all = dist.gather(z), dist.gather_nograd(p)
    losses, valid = anchor_losses(z, p, z_all, p_all, dist.rank * x.shape[0], tau, include_self_weight)
    n_valid = dist.sum(valid.sum().float().detach()).clamp(min=1.0)
    loss = losses.sum() * dist.world / n_valid
    return loss, dist.sum(loss.detach()) / dist.world


def lr_at(step: int, total: int, train: TrainSettings) -> float:
    """Linear warm-up, then cosine decay to zero, as a factor of train.lr."""
    if step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    progress = (step - train.warmup_steps) / max(1, total - train.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class Learner:
    """What a run trains, averages and checkpoints: the encoder, and the classifier when supervised."""

    model: Encoder
    classifier: nn.Linear | None
    net: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR

    def state(self, step: int) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "step": step,
                "classifier": None if self.classifier is None else self.classifier.state_dict()}

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.classifier is not None:
            self.classifier.load_state_dict(state["classifier"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])


def training_layout(device: torch.device) -> str:
    """The encoder's memory layout for training (model.with_layout): channels-last on a GPU, where it ran well
    ahead of the default layout at the poster's 2048 px (benchmarks/results/gpu.md, "GPU figures")."""
    return "channels_last" if device.type == "cuda" else "contiguous"


def new_learner(train: TrainSettings, n_classes: int, total: int, device: torch.device) -> Learner:
    model = with_layout(build_encoder(train).to(device), training_layout(device))
    classifier = nn.Linear(model.feature_dim, n_classes).to(device) if train.objective == "supervised" else None
    net = nn.ModuleDict({"encoder": model, "classifier": classifier}) if classifier is not None else model
    opt = torch.optim.AdamW(net.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    return Learner(model, classifier, net, opt,
                   torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_at(step, total, train)))


def _targets(classes: Classes, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The class set as tensors: (areas x classes membership, class index of each area)."""
    return torch.from_numpy(classes.membership()).to(device), torch.from_numpy(classes.of_area).to(device)


def _step(learner: Learner, train: TrainSettings, batch: dict, epoch: int,
          targets: tuple[torch.Tensor, torch.Tensor], augment, dist, device: torch.device, autocast) -> torch.Tensor:
    """One optimiser step on this rank's share of a global batch; the global loss. Labels and pmap vectors
    enter as classes (`targets`: atlas/classes.py), so merged hemispheres are one area to every objective."""
    membership, of_area = targets
    x = to_input(batch["image"].to(device, non_blocking=True))
    if augment is not None:
        x = augment(x, batch_generator(train.seed, epoch, dist.rank, batch["step"], device))
    x = x.contiguous(memory_format=learner.model.input_layout)
    if learner.classifier is not None:
        label = of_area[batch["label"].to(device).long()]
        loss, global_loss = supervised_loss_step(learner.model, learner.classifier, x, label, dist, autocast)
    else:
        p = (batch["pmap"].to(device) @ membership if train.objective == "contrastive"
             else nn.functional.one_hot(of_area[batch["label"].to(device).long()], membership.shape[1]).float())
        loss, global_loss = contrastive_loss_step(learner.model, x, p.to(device), dist, train.tau,
                                                  train.include_self_weight, autocast)
    learner.opt.zero_grad(set_to_none=True)
    loss.backward()
    dist.average_gradients(learner.net)
    learner.opt.step()
    learner.sched.step()
    return global_loss


class Record:
    """Rank 0's account of a run: metrics.csv, TensorBoard, the log and the checkpoint."""

    def __init__(self, out: Path, train: TrainSettings, plan: TrainPlan, world: int, log):
        from torch.utils.tensorboard import SummaryWriter

        self.out, self.train, self.plan, self.world, self.log = out, train, plan, world, log
        _keep_metrics_through(out / "metrics.csv", plan.start)
        # the same for TensorBoard: events past the checkpoint's step are dropped when this run logs its first
        self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=plan.start + 1 if plan.resume else None)
        self.t0 = time.perf_counter()

    def step(self, learner: Learner, step: int, epoch: int, loss: torch.Tensor) -> None:
        train, total = self.train, self.plan.total
        row = {"step": step, "epoch": epoch, "loss": float(loss), "lr": learner.sched.get_last_lr()[0],
               "samples_per_s": (step - self.plan.start) * train.batch_size * self.world
               / (time.perf_counter() - self.t0)}
        path = self.out / "metrics.csv"
        new = not path.is_file()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        self.writer.add_scalar("loss", row["loss"], step)
        self.writer.add_scalar("lr", row["lr"], step)
        if step % 10 == 0 or step == total:
            self.log(f"step {step}/{total} epoch {epoch} loss {row['loss']:.4f} lr {row['lr']:.2e} "
                     f"{row['samples_per_s']:.1f} samples/s")
        if step % train.checkpoint_every == 0 or step == total:
            save_atomic(learner.state(step), self.out / "checkpoint.pt")


def _keep_metrics_through(path: Path, step: int) -> None:
    """metrics.csv follows the checkpoint: its rows after `step` go (a run killed between two checkpoints
    logged steps that its resumption does again), so each step is listed once. Rewritten whole under a
    temporary name, so a kill here leaves the old file or the new one."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    kept = [r for r in rows if r.get("step", "").isdigit() and int(r["step"]) <= step]
    if len(kept) == len(rows):
        return
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(kept)
    os.replace(tmp, path)


def run_steps(learner: Learner, train: TrainSettings, plan: TrainPlan, stream: PatchStream, classes: Classes, dist,
              device: torch.device, record: Record | None) -> int:
    """The plan's remaining steps; returns the step reached."""
    augment = Augment(brightness=train.augment_brightness, contrast=train.augment_contrast) if train.augment else None
    autocast = torch.bfloat16 if device.type == "cuda" and train.bf16 else None
    targets = _targets(classes, device)
    learner.net.train()
    step = plan.start
    for epoch, first, _ in plan.segments:
        stream.set_epoch(epoch, first)
        for batch in stream.batches(train.workers):
            loss = _step(learner, train, batch, epoch, targets, augment, dist, device, autocast)
            step += 1
            if record is not None:
                record.step(learner, step, epoch, loss)
            if step >= plan.total:
                break
    return step
